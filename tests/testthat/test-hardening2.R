# Issue 19 (hardening, second round), the R side: the backend's messages for
# case weights of weight 0 in a whole group or in all clusters but one, for
# patience = 0 and GATES groups, a constant covariate and saving to a folder.

hardening2_data <- function() {
  df <- clustered_data(n_clusters = 8, n_per = 10)
  set.seed(7)
  df$d <- as.numeric(runif(nrow(df)) < 0.5)
  df$cw <- runif(nrow(df), 0.3, 3)   # not "w": a column would shadow the vectors below
  df
}

fast2 <- list(model = "linear", alpha = 1, progress = FALSE)

test_that("a treated or control group of weight 0 is refused by every estimator (item 1)", {
  skip_if_no_backend()
  df <- hardening2_data()
  for (group in c("treated", "control")) {
    w <- ifelse(df$d == (group == "treated"), 0, df$cw)
    message <- sprintf("weights: the %s rows all have case weight 0; an effect needs treated",
                       group)
    for (method in c("dml", "aipw")) {
      expect_error(do.call(rfp_effect, c(list(y ~ x1 + x2 | g, df, "d", method = method,
                                             folds = 2, weights = w), fast2)),
                   message, fixed = TRUE)
    }
    expect_error(rfp_balance(y ~ x1 + x2 | g, df, "d", weights = w), message, fixed = TRUE)
    expect_error(suppressWarnings(rfp_compare(y ~ x1 + x2 | g, df, "d", weights = w,
                                              methods = "fixed_effects")),
                 message, fixed = TRUE)
  }
})

test_that("positive weight in one cluster only is refused, counting the clusters (item 2)", {
  skip_if_no_backend()
  df <- hardening2_data()
  w <- ifelse(df$g == "c03", df$cw, 0)
  message <- "weights are positive in only 1 of the 8 clusters (cluster 'c03')"
  expect_error(rfp(y ~ x1 | g, df, weights = w, model = "linear", max_steps = 5,
                   progress = FALSE), message, fixed = TRUE)
  expect_error(do.call(rfp_effect, c(list(y ~ x1 | g, df, "d", folds = 2, weights = w), fast2)),
               message, fixed = TRUE)
})

test_that("patience = 0 is refused by the validator (item 8)", {
  skip_if_no_backend()
  df <- hardening2_data()
  expect_error(rfp(y ~ x1 | g, df, patience = 0, max_steps = 5, progress = FALSE),
               "patience must be a whole number >= 1 or None (NULL in R) (default 200), got 0",
               fixed = TRUE)
})

test_that("GATES groups are checked by the validator and a constant covariate is named (item 10)", {
  skip_if_no_backend()
  df <- hardening2_data()
  expect_error(rfp_heterogeneity(y ~ x1 | g, df, "d", groups = 2.5),
               "groups must be 0 (no GATES) or a whole number in [2, 10000] (quantile groups) or None (NULL in R), got 2.5",
               fixed = TRUE)
  expect_error(rfp_heterogeneity(y ~ x1 | g, df, "d", groups = 1), "got 1", fixed = TRUE)
  df$k <- 3
  expect_error(rfp_heterogeneity(y ~ x1 + k | g, df, "d", covariates = "k", groups = 0,
                                 folds = 2, nuisance = "linear"),
               "covariate 'k' is constant (every row is 3)", fixed = TRUE)
})

test_that("rfp_save to a folder or a missing folder names the path (item 14)", {
  skip_if_no_backend()
  df <- hardening2_data()
  fit <- suppressWarnings(rfp(y ~ x1 | g, df, model = "linear", max_steps = 5, progress = FALSE))
  folder <- tempfile("rfp-folder-")
  dir.create(folder)
  expect_error(rfp_save(fit, folder),
               sprintf("cannot save the model to %s: it is a folder; give a file name", folder),
               fixed = TRUE)
  expect_error(rfp_save(fit, file.path(folder, "nope", "m.rfp")),
               "does not exist; create the folder first", fixed = TRUE)
  expect_length(list.files(folder, all.files = TRUE, no.. = TRUE), 0L)
})

test_that("tune_grid candidates are checked by the validator, naming the key (item 9)", {
  skip_if_no_backend()
  df <- hardening2_data()
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, tune_grid = list(alpha = "a"), folds = 2,
                   model = "linear", progress = FALSE),
               "grid['alpha']: each candidate must be a number in [0, 1] (default 0.5), got 'a'",
               fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, tune_grid = list(alpha = NA), folds = 2,
                   model = "linear", progress = FALSE),
               "grid['alpha']: each candidate must be a number in [0, 1] (default 0.5), got NaN",
               fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, tune = TRUE, tune_grid = list(inner_steps = 1.5), folds = 2,
                   model = "linear", progress = FALSE),
               "grid['inner_steps']: each candidate must be a whole number", fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, tune_grid = list(alpha = c(1, 0.5)), model = "linear",
                   progress = FALSE),
               "tune_grid applies only with tune = TRUE", fixed = TRUE)
})

test_that("a weight column named obs or cluster is used as case weights (item 5)", {
  skip_if_no_backend()
  df <- hardening2_data()
  df$obs <- df$cw
  expect_warning(fit <- rfp(y ~ x1 | g, df, weights = "obs", model = "linear", alpha = 1,
                            max_steps = 20, patience = NULL, progress = FALSE),
                 "weights = \"obs\" names the data's column 'obs', used as case weights",
                 fixed = TRUE)
  ref <- suppressWarnings(rfp(y ~ x1 | g, df, weights = cw, model = "linear", alpha = 1,
                              max_steps = 20, patience = NULL, progress = FALSE))
  expect_equal(fit$weights, ref$weights)
  expect_equal(fitted(fit), fitted(ref))
  df$cluster <- df$cw
  seen <- character()
  e <- withCallingHandlers(
    do.call(rfp_effect, c(list(y ~ x1 | g, df, "d", folds = 2, weights = "cluster"), fast2)),
    warning = function(w) {
      seen <<- c(seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  expect_true(any(grepl("names the data's column 'cluster', used as case weights", seen,
                        fixed = TRUE)))
  expect_true(is.finite(coef(e)[[1]]))
})

test_that("a subset that leaves one cluster names the user's cluster variable (item 15)", {
  skip_if_no_backend()
  df <- hardening2_data()
  err <- tryCatch(rfp(y ~ x1 | g, df, subset = g == "c01", model = "linear", progress = FALSE),
                  error = conditionMessage)
  expect_match(err, "cluster column 'g' has only 1 cluster(s)", fixed = TRUE)
  expect_false(grepl("rfp_cluster", err, fixed = TRUE))
})

test_that("weights are subset before they are checked, as lm does (item 16)", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 12, n_per = 10)
  df$gn <- as.integer(factor(df$g))
  wv <- runif(nrow(df), 0.5, 2)
  wv[df$gn > 10] <- NA                       # missing outside the subset only
  fit <- suppressWarnings(rfp(y ~ x1 | g, df, weights = wv, subset = gn <= 10,
                              model = "linear", max_steps = 5, progress = FALSE))
  expect_equal(fit$weights, wv[df$gn <= 10])
  e <- suppressWarnings(rfp_effect(y ~ x1 | g, transform(df, d = as.numeric(x2 > 0)), "d",
                                   weights = wv, subset = gn <= 10, folds = 2,
                                   model = "linear", alpha = 1, progress = FALSE))
  expect_true(is.finite(coef(e)[[1]]))
  wv[3] <- NA                                # missing inside: named by its row in the data
  expect_error(rfp(y ~ x1 | g, df, weights = wv, subset = gn <= 10, model = "linear",
                   max_steps = 5, progress = FALSE),
               "row 3 is missing (NA/NaN) (1 such row(s))", fixed = TRUE)
})

test_that("rfp_heterogeneity refuses weights given as a bare name with the proper error (item 17)", {
  skip_if_no_backend()
  df <- hardening2_data()
  message <- "weights (case weights) are not supported by heterogeneity"
  expect_error(rfp_heterogeneity(y ~ x1 | g, df, "d", weights = cw, groups = 2), message,
               fixed = TRUE)
  expect_error(rfp_heterogeneity(y ~ x1 | g, df, "d", weights = "cw", groups = 2), message,
               fixed = TRUE)
  expect_error(rfp_heterogeneity(y ~ x1 | g, df, "d", weights = no_such_object, groups = 2),
               message, fixed = TRUE)
})

test_that("rfp_heterogeneity has coef, vcov, confint, nobs, tidy, glance, summary, autoplot (item 11)", {
  skip_if_no_backend()
  df <- hardening2_data()
  het <- suppressWarnings(rfp_heterogeneity(y ~ x1 + x2 | g, df, "d", covariates = "x1",
                                            groups = 2, folds = 2, nuisance = "linear"))
  terms <- c("blp:(Intercept)", "blp:x1", "gates:G1", "gates:G2", "gates:G2 - G1")
  expect_equal(coef(het), stats::setNames(c(het$blp$estimate, het$gates$estimate), terms))
  expect_equal(unname(diag(vcov(het))), c(het$blp$std.error, het$gates$std.error)^2)
  ci <- confint(het)
  expect_equal(unname(ci[, 1]), c(het$blp$conf.low, het$gates$conf.low))
  expect_equal(unname(ci[, 2]), c(het$blp$conf.high, het$gates$conf.high))
  expect_equal(rownames(confint(het, "blp:x1")), "blp:x1")
  expect_identical(nobs(het), het$effect$n)
  td <- tidy(het)
  expect_equal(td$term, terms)
  expect_equal(td$p.value, c(het$blp$p.value, het$gates$p.value))
  expect_equal(td$part, c("blp", "blp", "gates", "gates", "gates"))
  gl <- glance(het)
  expect_equal(gl$ate, het$effect$estimate)
  expect_identical(c(gl$n_covariates, gl$groups), c(1L, 2L))
  s <- summary(het)
  expect_s3_class(s, "summary.rfp_heterogeneity")
  expect_output(print(s), "gates:G2 - G1")
  expect_s3_class(autoplot(het), "ggplot")
})
