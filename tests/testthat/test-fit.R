# Fits through the backend: tiny data and few steps, so each takes a second.

test_that("R predictions equal the Python API's on the same data and seed", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 7, n_per = 12, seed = 2)
  new <- clustered_data(n_clusters = 3, n_per = 10, seed = 9)
  dir <- tempfile("ref")
  dir.create(dir)
  write_full_precision(df, file.path(dir, "train.csv"))
  write_full_precision(new, file.path(dir, "new.csv"))
  status <- system2(rfp_python()$python,
                    c(test_path("python_reference.py"), file.path(dir, c("train.csv", "new.csv",
                                                                         "out.csv"))),
                    stdout = TRUE, stderr = TRUE, env = "JAX_PLATFORMS=cpu")
  expect_null(attr(status, "status"), label = paste(status, collapse = "\n"))
  reference <- utils::read.csv(file.path(dir, "out.csv"))

  linear <- rfp(y ~ x1 + x2 + f | g, data = df, model = "linear", alpha = 0.5, inner_steps = 2,
                inner_lr = 0.1, max_steps = 40, seed = 3)
  mlp <- rfp(y ~ x1 + x2 + f | g, data = df, model = "mlp", hidden = c(8, 8), alpha = 0.3,
             inner_steps = 1, max_steps = 30, learning_rate = 0.02, seed = 5)
  diff_linear <- max(abs(predict(linear, newdata = new) - reference$linear))
  diff_mlp <- max(abs(predict(mlp, newdata = new) - reference$mlp))
  diff_adapted <- max(abs(predict(linear, newdata = new, adapted = TRUE) -
                            reference$linear_adapted))
  message(sprintf("max |R - Python| prediction difference: linear %.3g, mlp %.3g, adapted %.3g",
                  diff_linear, diff_mlp, diff_adapted))
  expect_lt(diff_linear, 1e-10)
  expect_lt(diff_mlp, 1e-10)
  expect_lt(diff_adapted, 1e-10)
  # adapting moves the predictions of each new cluster towards its own data
  expect_gt(max(abs(reference$linear_adapted - reference$linear)), 1e-6)
})

test_that("a fit has working methods: print, summary, fitted, residuals, nobs, tidy, glance", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + x2 + f | g, data = df, model = "linear", alpha = 0.5, inner_steps = 3,
             max_steps = 30)
  expect_s3_class(fit, "rfp")
  expect_output(print(fit), "alpha = 0.5, inner_steps = 3")
  s <- summary(fit)
  expect_output(print(s), "Clusters: +6 \\(5 training, 1 held out\\)")
  expect_identical(s$n_clusters, 6L)
  expect_identical(nobs(fit), nrow(df))
  expect_identical(s$n_train_obs + s$n_validation_obs, nrow(df))
  expect_true(all(is.finite(c(s$objective, s$validation_loss, s$loss))))
  expect_equal(predict(fit), fitted(fit))
  expect_equal(unname(predict(fit, newdata = df)), fitted(fit), tolerance = 1e-12)
  expect_equal(residuals(fit), df$y - fitted(fit))
  expect_identical(fit$history$step, c(10, 20, 30))
  # the linear coefficients (original scale) reproduce the predictions
  tidied <- tidy(fit)
  expect_identical(tidied$term, c("(Intercept)", "x1", "x2", "fv", "fw"))
  x <- cbind(1, rfp_design(y ~ x1 + x2 + f | g, df)$x)
  expect_equal(drop(x %*% tidied$estimate), fitted(fit), tolerance = 1e-10, ignore_attr = TRUE)
  expect_identical(coef(fit), setNames(tidied$estimate, tidied$term))
  g <- glance(fit)
  expect_identical(nrow(g), 1L)
  expect_identical(g$n_clusters, 6L)
  expect_identical(g$nobs, nrow(df))
})

test_that("an MLP gives average derivatives; the logistic loss gives probabilities", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + f | g, data = df, hidden = c(4L), max_steps = 20)
  tidied <- tidy(fit)
  expect_identical(tidied$type, rep("average derivative", 3))
  expect_true(all(is.finite(tidied$estimate)))
  df$b <- as.integer(df$y > median(df$y))
  logit <- rfp(b ~ x1 + x2 | g, data = df, model = "linear", loss = "logistic", max_steps = 20)
  p <- predict(logit, newdata = df)
  expect_true(all(p > 0 & p < 1))
  expect_equal(predict(logit, newdata = df, type = "link"), qlogis(p), tolerance = 1e-8)
  expect_output(print(summary(logit)), "log_loss")
})

test_that("the cluster may be a factor, character or integer column", {
  skip_if_no_backend()
  df <- clustered_data()
  df$g_chr <- sub("c0", "", df$g)       # "1".."6"
  df$g_fct <- factor(df$g_chr)
  df$g_int <- as.integer(df$g_chr)
  preds <- lapply(c("g_chr", "g_fct", "g_int"), function(g) {
    fit <- rfp(as.formula(paste("y ~ x1 + x2 |", g)), data = df, model = "linear",
               max_steps = 20)
    expect_identical(length(fit$clusters), 6L)
    expect_setequal(as.character(fit$clusters), as.character(1:6))
    expect_length(fit$validation_clusters, 1)
    predict(fit, newdata = df)
  })
  # the labels sort alike, so the held-out cluster and the fit are the same
  expect_identical(preds[[1]], preds[[2]])
  expect_identical(preds[[1]], preds[[3]])
})

test_that("missing values: an error before Python; na.omit / na.exclude drop and report", {
  skip_if_no_backend()
  df <- clustered_data()
  df$x2[c(4, 30)] <- NA
  expect_error(rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 10),
               "column 'x2' has 2 missing value(s)", fixed = TRUE)
  expect_message(fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 10,
                            na.action = na.omit), "dropped 2 row(s)", fixed = TRUE)
  expect_identical(nobs(fit), nrow(df) - 2L)
  expect_length(fitted(fit), nrow(df) - 2L)
  expect_identical(summary(fit)$n_dropped, 2L)
  fit <- suppressMessages(rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 10,
                              na.action = na.exclude))
  expect_length(fitted(fit), nrow(df))
  expect_true(all(is.na(residuals(fit)[c(4, 30)])))
  p <- predict(fit, newdata = df)
  expect_true(all(is.na(p[c(4, 30)])) && all(is.finite(p[-c(4, 30)])))
})

test_that("backend errors arrive as plain R errors, settings are checked by the backend", {
  skip_if_no_backend()
  df <- clustered_data()
  err <- tryCatch(rfp(y ~ x1 | g, data = df, model = "linear", loss = "logistic",
                      max_steps = 10), error = identity)
  expect_match(conditionMessage(err), "^the logistic loss needs an outcome coded 0/1$")
  expect_null(conditionCall(err))
  expect_error(rfp(y ~ x1 | g, data = df[df$g == "c01", ], model = "linear", max_steps = 10),
               "at least two clusters")
  expect_error(rfp(y ~ x1 | g, data = df, alpha = 2), "alpha must be a number in [0, 1]",
               fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, data = df, inner_steps = 1.5), "inner_steps must be a whole")
  expect_error(rfp(y ~ x1 | g, data = df, model = "lm"), "model must be one of", fixed = TRUE)
})

test_that("predict works for clusters not seen in training and without the cluster column", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + f | g, data = df, hidden = c(4L), max_steps = 20)
  new <- clustered_data(n_clusters = 2, seed = 7)[c("x1", "f")]
  p <- predict(fit, newdata = new)
  expect_length(p, nrow(new))
  expect_true(all(is.finite(p)))
  expect_identical(unname(predict(fit, newdata = new[3, ])), unname(p[3]))
  expect_error(predict(fit, newdata = data.frame(x1 = 1, f = "zz")), "new level")
})

test_that("adapted predictions need the outcome and cluster; NULL newdata adapts the training data", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- suppressMessages(rfp(y ~ x1 + x2 | g, data = transform(df, x1 = replace(x1, 2, NA)),
                              model = "linear", max_steps = 20, inner_steps = 2,
                              na.action = na.exclude, schedule = "cosine"))
  expect_identical(fit$settings$schedule, "cosine")
  expect_error(predict(fit, newdata = df[c("x1", "x2", "g")], adapted = TRUE),
               "need the outcome 'y' and the cluster 'g'")
  expect_error(predict(fit, newdata = df[c("x1", "x2", "y")], adapted = TRUE), "'g' not found")
  own <- predict(fit, adapted = TRUE)
  expect_length(own, nrow(df))
  expect_true(is.na(own[2]))
  expect_equal(own[-2], unname(predict(fit, newdata = df[-2, ], adapted = TRUE)),
               tolerance = 1e-12)
  expect_false(isTRUE(all.equal(own, fitted(fit))))
})

test_that("saveRDS, rfp_save and a new R session all predict identically", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + x2 + f | g, data = df, hidden = c(6L, 6L), max_steps = 20)
  before <- predict(fit, newdata = df)

  rds <- tempfile(fileext = ".rds")
  saveRDS(fit, rds)
  restored <- readRDS(rds)
  expect_identical(predict(restored, newdata = df), before)

  path <- tempfile(fileext = ".rds")
  expect_identical(rfp_save(fit, path), path)
  loaded <- rfp_load(path)
  expect_identical(predict(loaded, newdata = df), before)
  expect_identical(loaded$history, fit$history)
  expect_error(rfp_load({p <- tempfile(); saveRDS(list(a = 1), p); p}),
               "is an R data file (.rds), not an rfp model file", fixed = TRUE)

  data_path <- tempfile(fileext = ".rds")
  out_path <- tempfile(fileext = ".rds")
  saveRDS(df, data_path)
  res <- run_rscript(c(
    "library(rfp)",
    sprintf("fit <- rfp_load('%s')", path),
    sprintf("saveRDS(predict(fit, newdata = readRDS('%s')), '%s')", data_path, out_path)),
    env = c(paste0("RFP_PYTHON=", rfp_python()$python), "JAX_PLATFORMS=cpu"))
  expect_identical(res$status, 0L, label = paste(res$output, collapse = "\n"))
  expect_identical(readRDS(out_path), before)
})

test_that("progress shows as a text progress bar when verbose", {
  skip_if_no_backend()
  df <- clustered_data()
  out <- capture.output(fit <- rfp(y ~ x1 | g, data = df, model = "linear", max_steps = 30,
                                   verbose = TRUE))
  expect_match(paste(out, collapse = ""), "100%", fixed = TRUE)
  expect_identical(capture.output(quiet <- rfp(y ~ x1 | g, data = df, model = "linear",
                                               max_steps = 10, verbose = FALSE)), character(0))
})

test_that("plots: loss curves and the fitted function along a covariate", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + x2 + f | g, data = df, model = "linear", max_steps = 20)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_identical(plot(fit), fit$history)
  curve <- plot(fit, covariate = "x1", n = 25)
  expect_identical(dim(curve), c(25L, 2L))
  expect_equal(range(curve$x1), range(df$x1))
  # linear in x1 with the others fixed: the slope is the coefficient
  expect_equal(unname(diff(range(curve$prediction)) / diff(range(curve$x1))),
               abs(unname(coef(fit)["x1"])), tolerance = 1e-8)
  curve <- plot(fit, which = 2, covariate = "f")
  expect_identical(as.character(curve$f), c("u", "v", "w"))
  expect_error(plot(fit, covariate = "nope"), "must name one control variable")
})
