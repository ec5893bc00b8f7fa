# rfp_compare(): the table equals the Python API's; the fixed-effects row
# equals lm + sandwich; printing, plotting, bad input.

test_that("rfp_compare equals rfp.compare row by row to 1e-10", {
  skip_if_no_backend()
  r <- effects_r()$compare
  py <- effects_python()
  expect_identical(r$method, c("fixed_effects", "entropy_balancing", "cluster_balancing", "dml",
                               "aipw", "aipw", "kernel", "dml_maml", "dml_erm"))
  columns <- c(estimate = "estimate", std.error = "std_error", conf.low = "ci_low",
               conf.high = "ci_high", ess = "ess", variance_share = "variance_share",
               truth = "truth", error = "error")
  gaps <- vapply(names(columns), function(col) {
    a <- r[[col]]
    b <- py[[paste0("compare.", columns[[col]])]]
    expect_identical(is.na(a), is.na(b), label = col)
    max(abs(a - b), na.rm = TRUE)
  }, numeric(1))
  message(sprintf("max |R - Python| compare difference: %.3g (%s)", max(gaps),
                  names(gaps)[which.max(gaps)]))
  expect_lt(max(gaps), 1e-10)
  expect_identical(r$converged, py$compare.converged == 1)
  expect_identical(r$truth[r$estimand == "ATT"], rep(1.25, 4))
  expect_true(all(is.na(r$truth[r$estimand == "PLM"])))
  expect_s3_class(r, "rfp_compare")
  expect_identical(names(r), c("method", "estimand", "estimate", "std.error", "conf.low",
                               "conf.high", "n", "clusters", "ess", "converged",
                               "variance_share", "imbalance", "p.value", "df", "se_type",
                               "truth", "error", "note"))
})

test_that("the fixed-effects row equals lm + sandwich::vcovCL with CR1 by cluster", {
  skip_if_no_backend()
  skip_if_not_installed("sandwich")
  data(rfp_trial, package = "rfp", envir = environment())
  cmp <- rfp_compare(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d", fe = ~stratum,
                     methods = "fixed_effects")
  ols <- stats::lm(y ~ d + x1 + x2 + z + factor(stratum), data = rfp_trial)
  # fixest counts K = regressors + strata levels here (the strata are not nested
  # in the clusters: each stratum holds ten clusters), which is lm's rank, so
  # HC1 = G/(G-1) (n-1)/(n-K) CR1 agrees; written out too, as HC0 with the
  # cluster adjustment times (n-1)/(n-K) with fixest's K.
  n <- nrow(rfp_trial)
  k_fixest <- 4L + length(unique(rfp_trial$stratum))
  expect_identical(k_fixest, ols$rank)
  v_hc1 <- sandwich::vcovCL(ols, cluster = ~cluster, type = "HC1")
  v_fixest <- sandwich::vcovCL(ols, cluster = ~cluster, type = "HC0", cadjust = TRUE) *
    (n - 1) / (n - k_fixest)
  se <- sqrt(v_fixest["d", "d"])
  half <- stats::qt(0.975, df = length(unique(rfp_trial$cluster)) - 1) * se
  gaps <- abs(c(cmp$estimate - coef(ols)[["d"]], cmp$std.error - se,
                cmp$std.error - sqrt(v_hc1["d", "d"]),
                cmp$conf.low - (coef(ols)[["d"]] - half), cmp$conf.high - (coef(ols)[["d"]] + half)))
  message(sprintf("max |rfp_compare - lm + vcovCL| fixed effects: %.3g", max(gaps)))
  expect_lt(max(gaps), 1e-10)
  expect_identical(cmp$estimand, "OLS")
  expect_identical(cmp$clusters, 40L)
})

test_that("comparisons print as an aligned table, tidy to a data frame and plot", {
  skip_if_no_backend()
  cmp <- effects_r()$compare
  out <- capture.output(print(cmp))
  expect_match(out[1], "rfp comparison: effect of d on y")
  expect_true(any(grepl("^ +method +estimand +estimate", out)))
  expect_true(any(grepl("fixed_effects +OLS", out)))
  tidied <- tidy(cmp)
  expect_identical(class(tidied), "data.frame")
  expect_null(attr(tidied, "formula"))
  expect_equal(tidied$estimate, cmp$estimate)
  png_file <- tempfile(fileext = ".png")
  grDevices::png(png_file, width = 700, height = 500)
  plot(cmp)
  grDevices::dev.off()
  expect_gt(file.size(png_file), 1000)
  # subsets keep printing
  expect_output(print(cmp[1:2, ]), "entropy_balancing")
  # and so do column subsets (printed as a plain data frame)
  expect_output(print(cmp[c("method", "estimate")]), "fixed_effects")
})

test_that("bad input to rfp_compare gives clear R errors", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 4, n_per = 5)
  df$d <- rep(c(0, 1), 10)
  df$dose <- seq_len(nrow(df))
  df$word <- rep(c("a", "b"), 10)
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "word"), "word")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", methods = "ols"),
               "unknown method\\(s\\) 'ols'; known: fixed_effects")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", fe = ~block),
               "fixed-effect \\(strata\\) column 'block' not found")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", fe = y ~ f),
               "fe must be a one-sided formula")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", truth = 1),
               "truth must be a named numeric vector")
})
