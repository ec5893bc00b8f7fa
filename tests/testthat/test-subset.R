# subset = as in lm: the same result as subsetting the data first.

test_that("subset = gives the same results as subsetting the data first", {
  skip_if_no_backend()
  data(rfp_trial, package = "rfp", envir = environment())
  keep <- rfp_trial$x1 > -1
  a <- rfp_compare(y ~ x1 + x2 | cluster, rfp_trial, treatment = "d",
                   methods = c("fixed_effects", "entropy_balancing"), subset = x1 > -1)
  b <- rfp_compare(y ~ x1 + x2 | cluster, rfp_trial[keep, ], treatment = "d",
                   methods = c("fixed_effects", "entropy_balancing"))
  expect_identical(a$estimate, b$estimate)
  expect_identical(a$std.error, b$std.error)
  expect_lt(a$n[1], nrow(rfp_trial))

  fast <- list(model = "linear", max_steps = 20L, patience = NULL, verbose = FALSE)
  rows <- 1:300
  f1 <- do.call(rfp, c(list(y ~ x1 + x2 | cluster, rfp_trial, subset = rows), fast))
  f2 <- do.call(rfp, c(list(y ~ x1 + x2 | cluster, rfp_trial[rows, ]), fast))
  expect_identical(predict(f1, newdata = rfp_trial), predict(f2, newdata = rfp_trial))

  e1 <- rfp_balance(y ~ x1 + x2 | cluster, rfp_trial, treatment = "d", subset = x2 < 1)
  e2 <- rfp_balance(y ~ x1 + x2 | cluster, rfp_trial[rfp_trial$x2 < 1, ], treatment = "d")
  expect_identical(e1$estimate, e2$estimate)

  cut <- 0                                     # found in the caller's frame
  d1 <- rfp_effect(y ~ x1 | cluster, rfp_trial, treatment = "d", folds = 2, model = "linear",
                   max_steps = 20, subset = x2 > cut)
  d2 <- rfp_effect(y ~ x1 | cluster, rfp_trial[rfp_trial$x2 > 0, ], treatment = "d", folds = 2,
                   model = "linear", max_steps = 20)
  expect_identical(d1$estimate, d2$estimate)
})

test_that("a bad subset is a clear error", {
  data(rfp_trial, package = "rfp", envir = environment())
  expect_error(rfp_compare(y ~ x1 | cluster, rfp_trial, "d", subset = c(TRUE, FALSE)),
               "has 2 value\\(s\\) but the data have")
  expect_error(rfp_compare(y ~ x1 | cluster, rfp_trial, "d", subset = nope > 1),
               "could not be evaluated in the data")
  expect_error(rfp_compare(y ~ x1 | cluster, rfp_trial, "d", subset = "x1"),
               "must be a logical vector")
  expect_error(rfp_compare(y ~ x1 | cluster, rfp_trial, "d", subset = x1 > 100),
               "keeps no rows")
  expect_error(rfp_compare(y ~ x1 | cluster, rfp_trial, "d", subset = 0:3),
               "row numbers between 1 and")
})
