# rfp(tune = TRUE): cross-validation across clusters from R, and the backend's
# fit warnings as classed R warnings.

test_that("rfp(tune = TRUE) chooses by cross-validation and equals the Python API", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 8, n_per = 12)
  fit <- rfp(y ~ x1 + x2 | g, data = df, hidden = 4L, tune = TRUE,
             tune_grid = list(alpha = c(1, 0.5), inner_lr = 0.2, learning_rate = c(0.05, 0.01)),
             folds = 4L, max_steps = 60L, seed = 2L, progress = FALSE)
  cv <- fit$cv
  # 2 linear candidates (alpha 1 and 0.5), 4 network configurations, the mean
  expect_equal(nrow(cv), 2L + 4L + 1L)
  expect_equal(as.character(cv$model), c("linear", "linear", rep("mlp", 4), "mean"))
  expect_equal(rownames(cv)[nrow(cv)], "mean (no model)")
  expect_equal(sum(cv$chosen), 1L)
  chosen <- cv[cv$chosen, ]
  expect_equal(chosen$cv_loss, min(cv$cv_loss))        # margin 0: the lowest loss
  expect_equal(chosen$diff, 0)
  if (chosen$model == "mlp") {
    expect_equal(fit$settings$alpha, chosen$alpha)
    expect_equal(fit$settings$max_steps, chosen$step)
  }

  b <- rfp:::backend()
  np <- reticulate::import("numpy", convert = FALSE)
  x <- np$column_stack(list(rfp:::py_column(df$x1), rfp:::py_column(df$x2)))
  grid <- list(alpha = list(1, 0.5), inner_lr = list(0.2), learning_rate = list(0.05, 0.01))
  py_rfp <- reticulate::import("rfp", convert = FALSE)   # the Python API itself
  py <- py_rfp$tune_arrays(x, rfp:::py_column(df$y), df$g, hidden = list(4L), grid = grid,
                           folds = 4L, max_steps = 60L, seed = 2L, progress = FALSE)
  expect_equal(cv$cv_loss, rfp:::r_plain(py$cv$to_arrow()$column("cv_loss")$to_pylist()),
               tolerance = 1e-12)
  expect_equal(unname(predict(fit, newdata = df)),
               rfp:::r_numeric(py$predict_arrays(x)), tolerance = 1e-12)
  expect_output(print(summary(fit)), "Cross-validation across clusters")
})

test_that("a linear winner is refitted, saved, loaded and predicted from R", {
  skip_if_no_backend()
  set.seed(11)
  df <- data.frame(g = rep(1:30, each = 10), x1 = rnorm(300))
  df$x1 <- df$x1 + rep(rnorm(30), each = 10)
  df$y <- 2 * df$x1 + rep(rnorm(30, sd = 0.3), each = 10) + rnorm(300, sd = 0.5)
  fit <- rfp(y ~ x1 | g, data = df, hidden = 8L, tune = TRUE, margin = 1, max_steps = 100L,
             seed = 1L, progress = FALSE)
  chosen <- fit$cv[fit$cv$chosen, ]
  expect_equal(as.character(chosen$model), "linear")
  expect_equal(fit$settings$model, "linear")
  if (chosen$alpha == 1) {                                 # least squares
    expect_equal(unname(fitted(fit)), unname(fitted(lm(y ~ x1, df))), tolerance = 1e-8)
    expect_equal(unname(coef(fit)), unname(coef(lm(y ~ x1, df))), tolerance = 1e-8)
  }
  path <- tempfile(fileext = ".rfp")
  rfp_save(fit, path)
  back <- rfp_load(path)
  new <- data.frame(x1 = seq(-3, 3, length.out = 7))
  expect_identical(predict(back, newdata = new), predict(fit, newdata = new))
  expect_equal(back$cv, fit$cv)
  expect_s3_class(autoplot(fit, which = "cv"), "ggplot")
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

# A small network tuned over alpha on 8 small clusters (y = x1 + noise); the
# data ride along as an attribute.
small_tuned_fit <- function(seed, alphas, max_steps) {
  set.seed(seed)
  df <- data.frame(g = rep(1:8, each = 10), x1 = rnorm(80))
  df$y <- df$x1 + rnorm(80)
  fit <- suppressWarnings(rfp(y ~ x1 | g, data = df, hidden = 4L, tune = TRUE,
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
  # a curve is marked chosen exactly when a network configuration was chosen
  expect_equal(any(fit$cv_curves$chosen), fit$cv$model[fit$cv$chosen] == "mlp")
  # the curve's minimum is the table's cv_loss for each network configuration
  mins <- tapply(fit$cv_curves$cv_loss, fit$cv_curves$config, min)
  network <- fit$cv$model == "mlp"
  expect_equal(sort(as.numeric(mins)), sort(fit$cv$cv_loss[network]), tolerance = 1e-12)
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
                              tune_grid = list(alpha = c(1, 0.5)), folds = 2L, simple = FALSE,
                              max_steps = 20, ensemble = 3L, progress = FALSE))
  model <- rfp:::backend_model(fit)
  expect_false(inherits(model$members, "python.builtin.NoneType"))   # the ensemble is kept
  expect_error(rfp(y ~ x1 | g, df, ensemble = 2L), "only with tune")
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, ensemble = 0L), "ensemble")
})
