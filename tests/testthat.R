library(testthat)
library(rfp)

test_check("rfp")
