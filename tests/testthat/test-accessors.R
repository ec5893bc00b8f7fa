# coef, vcov, confint, nobs, print, summary, tidy and glance on every result
# class. Reference numbers are recomputed here from the stored estimate and
# standard error with stats::qt / stats::pt (the t intervals with G - 1
# degrees of freedom), never copied from a printout.

broom_columns <- c("term", "estimate", "std.error", "statistic", "p.value", "conf.low",
                   "conf.high")

# The checks every result with one or more standard errors must pass.
expect_inference <- function(object, estimate, se, df, level = 0.95) {
  terms <- names(coef(object))
  expect_equal(unname(coef(object)), estimate)
  v <- vcov(object)
  expect_identical(dimnames(v), list(terms, terms))
  expect_equal(unname(diag(v)), se^2)
  ci <- confint(object)
  expect_identical(rownames(ci), terms)
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  q <- stats::qt(0.975, df)
  expect_equal(unname(ci[, 1]), estimate - q * se, tolerance = 1e-8)
  expect_equal(unname(ci[, 2]), estimate + q * se, tolerance = 1e-8)
  ci90 <- confint(object, level = 0.9)
  expect_identical(colnames(ci90), c("5 %", "95 %"))
  expect_equal(unname(ci90[, 2]), estimate + stats::qt(0.95, df) * se, tolerance = 1e-12)
  expect_identical(rownames(confint(object, parm = terms[1])), terms[1])
  expect_error(confint(object, parm = "no such term"), "parm must name coefficients")
  tidied <- tidy(object)
  expect_identical(names(tidied)[seq_along(broom_columns)], broom_columns)
  expect_identical(tidied$term, terms)
  expect_equal(tidied$statistic, estimate / se)
  expect_equal(tidied$p.value, 2 * stats::pt(-abs(estimate / se), df))
  expect_equal(tidied$conf.low, unname(ci[, 1]))
  g <- glance(object)
  expect_identical(nrow(g), 1L)
  expect_identical(g$nobs, nobs(object))
  expect_identical(g$se_type, "CR1")
}

test_that("a linear fit: coef, nobs, tidy, glance; no variance, said in an error", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 30, progress = FALSE)
  x <- cbind(1, as.matrix(df[c("x1", "x2")]))
  expect_equal(drop(x %*% coef(fit)), fitted(fit), tolerance = 1e-10, ignore_attr = TRUE)
  expect_identical(nobs(fit), nrow(df))
  tidied <- tidy(fit)
  expect_identical(names(tidied), c(broom_columns, "type"))
  expect_equal(tidied$estimate, unname(coef(fit)))
  expect_true(all(is.na(tidied$std.error)))
  expect_error(vcov(fit), "has no sampling variance.*rfp_effect")
  expect_error(confint(fit), "has no sampling variance")
  expect_identical(glance(fit)$nobs, nrow(df))
  out <- capture.output(print(summary(fit)))
  expect_true(any(grepl("^Coefficients \\(original scale", out)))
  expect_true(any(grepl("^x2 +-?[0-9]", out)))
})

test_that("an MLP fit: coef() is an error with a message, never NULL; summary keeps the
           training objective and the held-out loss apart", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 + x2 | g, data = df, hidden = 4L, max_steps = 20, progress = FALSE)
  expect_error(coef(fit), "model = \"mlp\" has no coefficients.*tidy\\(fit\\)")
  expect_error(vcov(fit), "no sampling variance")
  expect_identical(nobs(fit), nrow(df))
  expect_identical(tidy(fit)$type, rep("average derivative", 2))
  s <- summary(fit)
  out <- capture.output(print(s))
  objective_row <- grep("^training objective R_k", out, value = TRUE)
  held_out_row <- grep("^pooled loss L", out, value = TRUE)
  # each row holds one quantity: R_k has no held-out entry, L no training entry
  expect_match(objective_row, "-$")
  expect_match(held_out_row, "^pooled loss L \\(standardised\\) +- +[0-9]")
  expect_true(any(grepl("^Average derivatives", out)))
  expect_output(print(fit), "rfp fit \\(mlp model")
})

test_that("effects: coef, vcov, confint, nobs, tidy, glance, summary", {
  skip_if_no_backend()
  r <- effects_r()
  for (e in r[c("dml", "ate", "att")]) {
    expect_inference(e, e$estimate, e$std.error, e$n_clusters - 1)
    expect_identical(names(coef(e)), "d")
    expect_identical(nobs(e), nrow(r$data))
    out <- capture.output(print(summary(e)))
    expect_true(any(grepl("Estimate +Std. Error +t value +Pr\\(>\\|t\\|\\)", out)))
    expect_true(any(grepl("^Standard error: CR1, clustered by g", out)))
    expect_false(any(grepl("\\[[0-9.]+, [0-9.]+\\]", out)))  # no Python lists
    expect_output(print(e), "estimate .*std. error")
  }
  learner <- r$learner
  expect_equal(unname(coef(learner)), learner$estimate)
  expect_error(vcov(learner), "T-learner.*without a standard error")
  expect_error(confint(learner), "T-learner.*without a standard error")
  expect_identical(nobs(learner), nrow(r$data))
  expect_identical(names(tidy(learner))[1:7], broom_columns)
  expect_output(print(summary(learner)), "Standard error: none")
})

test_that("per-fold diagnostics are numbers in R and print as a plain list", {
  skip_if_no_backend()
  df <- trial_data()
  e <- do.call(rfp_effect, c(list(y ~ x1 + x2 + z | g, df, "d", method = "aipw", folds = 2,
                                  repeats = 2, seed = 1), effect_settings))
  expect_type(e$diagnostics$split_estimates, "double")
  expect_length(e$diagnostics$split_estimates, 2)
  expect_equal(median(e$diagnostics$split_estimates), e$estimate)
  out <- capture.output(print(summary(e)))
  expect_false(any(grepl("\\[", out[grepl("split_estimates|propensity_penalty", out)])))
  expect_true(any(grepl("split_estimates +-?[0-9.e-]+, -?[0-9.e-]+", out)))
})

test_that("comparisons: coef, vcov, confint, nobs, tidy, glance, summary", {
  skip_if_no_backend()
  cmp <- effects_r()$compare
  ok <- is.finite(cmp$std.error)
  terms <- ifelse(nzchar(cmp$estimand), paste0(cmp$method, ":", cmp$estimand), cmp$method)
  expect_identical(names(coef(cmp)), terms)
  expect_true("fixed_effects:OLS" %in% terms)
  finite <- structure(cmp[ok, ], class = class(cmp), level = attr(cmp, "level"))
  expect_inference(finite, finite$estimate, finite$std.error, finite$clusters - 1)
  v <- vcov(cmp)
  expect_true(all(is.na(v[row(v) != col(v)])))  # covariances across estimators: not estimated
  expect_identical(nobs(cmp), nrow(effects_r()$data))
  tidied <- tidy(cmp)
  expect_true(all(c("method", "estimand", "ess", "converged", "truth", "note") %in%
                    names(tidied)))
  g <- glance(cmp)
  expect_identical(g$n_clusters, 12L)
  expect_identical(g$treatment, "d")
  expect_identical(g$strata, "s")
  out <- capture.output(print(summary(cmp)))
  expect_true(any(grepl("^fixed_effects:OLS +-?[0-9]", out)))
  expect_true(any(grepl("Estimate +Std. Error +t value", out)))
  expect_true(any(grepl("^Diagnostics", out)))
})

test_that("balancing weights: coef, vcov, confint, nobs, tidy (ATT or balance), glance", {
  skip_if_no_backend()
  r <- effects_r()
  for (b in r[c("entropy", "cluster", "hierarchical")]) {
    expect_inference(b, b$estimate, b$std.error, b$n_clusters - 1)
    expect_identical(nobs(b), b$n)
    expect_identical(tidy(b)$estimand, "ATT")
    expect_identical(names(tidy(b, what = "balance"))[c(1, 7, 8)],
                     c("covariate", "smd_before", "smd_after"))
    g <- glance(b)
    expect_equal(g$max_abs_smd_after, max(abs(b$balance$smd_after)))
    expect_output(print(summary(b)), "Estimate +Std. Error")
  }
})

test_that("a stored variance type is shown and a stored vcov is what vcov() reads", {
  skip_if_no_backend()
  e <- effects_r()$ate
  e$se_type <- "CR2"
  e$vcov <- 4 * e$std.error^2
  e$df <- 7.5
  expect_equal(unname(vcov(e)[1, 1]), 4 * e$std.error^2)
  expect_equal(unname(confint(e, level = 0.9)[1, 2]),
               e$estimate + stats::qt(0.95, 7.5) * 2 * e$std.error)
  expect_output(print(summary(e)), "Standard error: CR2")
  expect_identical(glance(e)$se_type, "CR2")
})
