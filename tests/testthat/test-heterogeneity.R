# rfp_heterogeneity(): the R front end equals the backend's rfp.heterogeneity.

test_that("rfp_heterogeneity equals rfp.heterogeneity to 1e-12", {
  skip_if_no_backend()
  df <- trial_data()
  het <- rfp_heterogeneity(y ~ x1 + x2 + z | g, df, "d", covariates = c("x1", "z"),
                           groups = 3, folds = 3, seed = 2, repeats = 1, nuisance = "linear",
                           propensity_penalty = 1)
  py <- reticulate::import("rfp", convert = FALSE)
  table <- reticulate::r_to_py(df[c("y", "d", "x1", "x2", "z", "g")])
  ref <- py$heterogeneity(table, "y", "d", list("x1", "x2", "z"), "g",
                          covariates = list("x1", "z"), groups = 3L, folds = 3L, seed = 2L,
                          repeats = 1L, nuisance = "linear", propensity_penalty = 1)
  col <- function(table, name) unlist(reticulate::py_to_r(table$column(name)$to_pylist()))
  blp <- list(estimate = col(ref$blp, "estimate"), std_error = col(ref$blp, "std_error"))
  gates <- list(estimate = col(ref$gates, "estimate"))
  expect_identical(het$blp$term, c("(Intercept)", "x1", "z"))
  expect_equal(het$blp$estimate, blp$estimate, tolerance = 1e-12)
  expect_equal(het$blp$std.error, blp$std_error, tolerance = 1e-12)
  expect_equal(het$gates$estimate, gates$estimate, tolerance = 1e-12)
  expect_equal(het$blp$estimate[1], het$effect$estimate, tolerance = 1e-12)
  expect_identical(nrow(het$gates), 4L)
  expect_output(print(het), "Best linear projection")
  expect_error(rfp_heterogeneity(y ~ x1 + x2 + z | g, df, "d", covariates = "age"),
               "'age' are not among the controls")
})
