# Small-cluster inference from R: vcov / se_type on rfp_compare's
# fixed-effects row (CR2 against clubSandwich and estimatr, the wild
# bootstrap seeded), the small-cluster warning, and clear errors.

few_clusters <- function(n_clusters = 12, seed = 3) {
  set.seed(seed)
  size <- sample(8:20, n_clusters, replace = TRUE)
  g <- rep(seq_len(n_clusters), size)
  n <- length(g)
  stratum <- g %% 3
  x1 <- rnorm(n)
  d <- as.numeric(runif(n) < 0.3 + 0.1 * stratum)
  y <- 0.5 * d + 0.4 * x1 + 0.3 * stratum + rnorm(n_clusters)[g] + rnorm(n)
  data.frame(y = y, d = d, x1 = x1, g = g, stratum = stratum)
}

test_that("vcov = 'CR2' on the fixed-effects row equals clubSandwich and estimatr to 1e-8", {
  skip_if_no_backend()
  skip_if_not_installed("clubSandwich")
  skip_if_not_installed("estimatr")
  df <- few_clusters()
  cmp <- expect_silent(rfp_compare(y ~ x1 | g, df, treatment = "d", fe = ~stratum,
                                   methods = "fixed_effects", vcov = "CR2"))
  ols <- stats::lm(y ~ d + x1 + factor(stratum), data = df)
  ct <- clubSandwich::coef_test(ols, vcov = "CR2", cluster = df$g, test = "Satterthwaite",
                                coefs = "d")
  expect_equal(cmp$std.error, ct$SE, tolerance = 1e-8)
  expect_equal(cmp$df, ct$df_Satt, tolerance = 1e-8)
  expect_equal(cmp$p.value, ct$p_Satt, tolerance = 1e-8)
  lr <- estimatr::lm_robust(y ~ d + x1 + factor(stratum), data = df, clusters = g,
                            se_type = "CR2")
  expect_equal(cmp$conf.low, unname(lr$conf.low["d"]), tolerance = 1e-8)
  expect_equal(cmp$conf.high, unname(lr$conf.high["d"]), tolerance = 1e-8)
  expect_identical(cmp$se_type, "CR2")
  expect_identical(attr(cmp, "se_type"), "CR2")
  expect_output(print(cmp), "fixed effects: CR2, t with Satterthwaite df")
  # se_type is the same setting under estimatr's name
  same <- rfp_compare(y ~ x1 | g, df, treatment = "d", fe = ~stratum, methods = "fixed_effects",
                      se_type = "CR2")
  expect_identical(same$std.error, cmp$std.error)
})

test_that("CR1 with fewer than 30 clusters warns and recommends CR2 or the bootstrap", {
  skip_if_no_backend()
  df <- few_clusters()
  expect_warning(cmp <- rfp_compare(y ~ x1 | g, df, treatment = "d", methods = "fixed_effects"),
                 "only 12 clusters.*CR2.*wild", class = "rfp_small_cluster_warning")
  expect_identical(cmp$se_type, "CR1")
  expect_equal(cmp$df, 11)
})

test_that("vcov = 'wild' is seeded and gives a bootstrap interval", {
  skip_if_no_backend()
  df <- few_clusters()
  a <- rfp_compare(y ~ x1 | g, df, treatment = "d", methods = "fixed_effects", vcov = "wild",
                   bootstrap_draws = 999, bootstrap_weights = "webb", seed = 2)
  b <- rfp_compare(y ~ x1 | g, df, treatment = "d", methods = "fixed_effects", vcov = "wild",
                   bootstrap_draws = 999, bootstrap_weights = "webb", seed = 2)
  expect_identical(a$conf.low, b$conf.low)
  expect_identical(a$se_type, "wild")
  expect_match(a$note, "wild cluster bootstrap")
  cr1 <- suppressWarnings(rfp_compare(y ~ x1 | g, df, treatment = "d",
                                      methods = "fixed_effects"))
  expect_equal(a$std.error, cr1$std.error)
  expect_false(isTRUE(all.equal(a$conf.low, cr1$conf.low)))
})

test_that("bad vcov settings and DML / AIPW with CR2 or wild are clear errors", {
  skip_if_no_backend()
  df <- few_clusters()
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", vcov = ~g),
               "cluster is the right side of the formula's `|`")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", vcov = "HC1"),
               "vcov must be one of 'CR1', 'CR2', 'wild'")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", se_type = "HC1"),
               "se_type must be one of 'CR1', 'CR2', 'wild', got 'HC1'", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", bootstrap_weights = "mammen"),
               "bootstrap_weights must be one of 'rademacher', 'webb'", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", vcov = "CR2", se_type = "CR1"),
               "not both")
  expect_error(rfp_compare(y ~ x1 | g, df, treatment = "d", bootstrap_draws = 5),
               "bootstrap_draws must be a whole number >= 99")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", method = "dml", vcov = "CR2"),
               "not available for DML.*hat matrix")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", method = "aipw", se_type = "wild"),
               "not available for AIPW")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", method = "t_learner", vcov = "CR2"),
               "does not apply to the T-learner")
})
