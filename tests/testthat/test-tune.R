# rfp(tune = TRUE): cross-validation across clusters from R, and the backend's
# fit warnings as classed R warnings.

test_that("rfp(tune = TRUE) chooses by cross-validation and equals the Python API", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 8, n_per = 12)
  fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", tune = TRUE,
             tune_grid = list(alpha = c(1, 0.5), inner_lr = 0.2, learning_rate = c(0.05, 0.01)),
             folds = 4L, max_steps = 60L, seed = 2L, progress = FALSE)
  cv <- fit$cv
  expect_equal(nrow(cv), 4L + 1L)                       # 4 configurations + the mean
  expect_equal(rownames(cv)[nrow(cv)], "mean (no model)")
  expect_equal(sum(cv$chosen), 1L)
  chosen <- cv[cv$chosen, ]
  expect_equal(fit$settings$alpha, chosen$alpha)
  expect_equal(fit$settings$max_steps, chosen$step)
  expect_equal(chosen$cv_loss, min(cv$cv_loss[-nrow(cv)]))

  b <- rfp:::backend()
  np <- reticulate::import("numpy", convert = FALSE)
  x <- np$column_stack(list(rfp:::py_column(df$x1), rfp:::py_column(df$x2)))
  grid <- list(alpha = list(1, 0.5), inner_lr = list(0.2), learning_rate = list(0.05, 0.01))
  py <- b$rfp$tune_arrays(x, rfp:::py_column(df$y), df$g, model = "linear", grid = grid,
                          folds = 4L, max_steps = 60L, seed = 2L, progress = FALSE)
  expect_equal(cv$cv_loss, rfp:::r_plain(py$cv$to_arrow()$column("cv_loss")$to_pylist()),
               tolerance = 1e-12)
  expect_equal(unname(predict(fit, newdata = df)),
               rfp:::r_numeric(py$predict_arrays(x)), tolerance = 1e-12)
  expect_output(print(summary(fit)), "Cross-validation across clusters")
})

test_that("tune_grid is checked", {
  skip_if_no_backend()
  df <- clustered_data()
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, tune_grid = list(0.5)), "named list")
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, tune_grid = list(max_steps = 10)),
               "cannot be tuned")
  expect_error(rfp(y ~ x1 | g, df, tune = NA), "TRUE or FALSE")
})

test_that("a fit that has not converged warns with class rfp_not_converged_warning", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 10)
  expect_warning(rfp(y ~ x1 + x2 | g, df, model = "linear", learning_rate = 1e-3,
                     max_steps = 20L, progress = FALSE),
                 class = "rfp_not_converged_warning")
})

test_that("cv_dtype reaches tune and is refused without it", {
  skip_if_no_backend()
  df <- data.frame(y = rnorm(60), x1 = rnorm(60), g = rep(1:6, each = 10))
  expect_error(rfp(y ~ x1 | g, df, cv_dtype = "float64"), "only with tune")
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, cv_dtype = "half"), "cv_dtype")
})

# A linear fit tuned over alpha on 8 small clusters (y = x1 + noise); the
# data ride along as an attribute.
small_tuned_fit <- function(seed, alphas, max_steps) {
  set.seed(seed)
  df <- data.frame(g = rep(1:8, each = 10), x1 = rnorm(80))
  df$y <- df$x1 + rnorm(80)
  fit <- suppressWarnings(rfp(y ~ x1 | g, data = df, model = "linear", tune = TRUE,
                              tune_grid = list(alpha = alphas), folds = 2L,
                              max_steps = max_steps, progress = FALSE))
  structure(fit, test_data = df)
}

test_that("rfp_save / rfp_load keep a tuned fit's cross-validation table", {
  skip_if_no_backend()
  fit <- small_tuned_fit(2, c(1, 0.5), 20)
  path <- tempfile(fileext = ".rfp")
  rfp_save(fit, path)
  back <- rfp_load(path)
  expect_equal(back$cv, fit$cv)
  expect_true(any(back$cv$chosen))
})

test_that("autoplot(fit, which = 'cv') draws the cross-validated curves", {
  skip_if_no_backend()
  fit <- small_tuned_fit(3, c(1, 0.5, 0), 30)
  df <- attr(fit, "test_data")
  p <- autoplot(fit, which = "cv")
  expect_s3_class(p, "ggplot")
  expect_match(p$labels$title, "Cross-validation across clusters (3 configurations)", fixed = TRUE)
  d <- ggplot2::ggplot_build(p)$data[[1]]
  expect_equal(nrow(d), nrow(fit$cv_curves))
  expect_equal(sum(fit$cv_curves$chosen) > 0, TRUE)
  # the curve's minimum is the table's cv_loss for each configuration
  mins <- tapply(fit$cv_curves$cv_loss, fit$cv_curves$config, min)
  expect_equal(sort(as.numeric(mins)), sort(fit$cv$cv_loss[-nrow(fit$cv)]), tolerance = 1e-12)
  untuned <- suppressWarnings(rfp(y ~ x1 | g, data = df, model = "linear", max_steps = 10,
                                  progress = FALSE))
  expect_error(autoplot(untuned, which = "cv"), "was not tuned")
})

test_that("ensemble = S reaches tune and predicts with the members' mean", {
  skip_if_no_backend()
  set.seed(4)
  df <- data.frame(g = rep(1:8, each = 10), x1 = rnorm(80))
  df$y <- sin(df$x1) + rnorm(80, sd = 0.3)
  fit <- suppressWarnings(rfp(y ~ x1 | g, data = df, hidden = 4L, tune = TRUE,
                              tune_grid = list(alpha = c(1, 0.5)), folds = 2L,
                              max_steps = 20, ensemble = 3L, progress = FALSE))
  model <- rfp:::backend_model(fit)
  expect_false(inherits(model$members, "python.builtin.NoneType"))   # the ensemble is kept
  expect_error(rfp(y ~ x1 | g, df, ensemble = 2L), "only with tune")
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, ensemble = 0L), "ensemble")
})
