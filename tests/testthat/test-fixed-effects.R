# rfp_fixed_effects(): the backend's fixed-effects estimator (rfp.fixed_effects
# through the facade) as an R front end like estimatr::lm_robust.

test_that("rfp_fixed_effects equals lm_robust (CR1 = stata, CR2) without fixed effects", {
  skip_if_no_backend()
  skip_if_not_installed("estimatr")
  data(rfp_trial, package = "rfp")
  for (type in c("CR1", "CR2")) {
    fit <- rfp_fixed_effects(y ~ x1 + x2 | cluster, rfp_trial, treatment = "d", vcov = type)
    ref <- estimatr::lm_robust(y ~ d + x1 + x2, rfp_trial, clusters = cluster,
                               se_type = if (type == "CR1") "stata" else "CR2")
    expect_identical(names(coef(fit)), c("(Intercept)", "d", "x1", "x2"))
    expect_equal(unname(coef(fit)), unname(coef(ref)), tolerance = 1e-10)
    expect_equal(unname(vcov(fit)), unname(vcov(ref)), tolerance = 1e-8)
    expect_equal(tidy(fit)$conf.low, unname(ref$conf.low), tolerance = 1e-8)
    expect_equal(tidy(fit)$p.value, unname(ref$p.value), tolerance = 1e-8)
    expect_identical(fit$se_type, type)
  }
})

test_that("fixed effects are absorbed, each variable its own set, as the Python API does", {
  skip_if_no_backend()
  data(rfp_trial, package = "rfp")
  df <- rfp_trial
  df$wave <- rep(1:4, length.out = nrow(df))
  fit <- rfp_fixed_effects(y ~ x1 | cluster, df, treatment = "d", fe = ~ stratum + wave,
                           level = 0.9)
  expect_identical(names(coef(fit)), c("d", "x1"))
  ols <- stats::lm(y ~ d + x1 + factor(stratum) + factor(wave), df)
  expect_equal(unname(coef(fit)), unname(coef(ols)[c("d", "x1")]), tolerance = 1e-8)
  py_rfp <- reticulate::import("rfp", convert = FALSE)   # the Python API itself
  table <- rfp:::py_columns(list(y = df$y, d = df$d, x1 = df$x1, cluster = df$cluster,
                                 stratum = as.character(df$stratum),
                                 wave = as.character(df$wave)))
  py <- py_rfp$fixed_effects(table, "y", "d", list("x1"), list("stratum", "wave"),
                             cluster = "cluster", level = 0.9)
  expect_equal(tidy(fit)$std.error, rfp:::r_numeric(py$std_error), tolerance = 1e-12)
  expect_equal(tidy(fit)$conf.high, rfp:::r_numeric(py$ci_high), tolerance = 1e-12)
  expect_equal(fit$level, 0.9)
  expect_equal(unname(confint(fit, level = 0.9)[, 2]), tidy(fit)$conf.high)
  expect_equal(nobs(fit), nrow(df))
  expect_output(print(fit), "fixed effects stratum \\+ wave")
  expect_identical(glance(fit)$n_fe, 2L)
})

test_that("subset, weights and settings go through the shared capture point and validator", {
  skip_if_no_backend()
  data(rfp_trial, package = "rfp")
  df <- rfp_trial
  df$w <- rep(c(1, 2), length.out = nrow(df))
  fit <- rfp_fixed_effects(y ~ x1 | cluster, df, treatment = "d", weights = w,
                           subset = cluster <= 30)
  ols <- stats::lm(y ~ d + x1, df[df$cluster <= 30, ], weights = w)
  expect_equal(unname(coef(fit)), unname(coef(ols)), tolerance = 1e-8)
  expect_equal(nobs(fit), sum(df$cluster <= 30))
  expect_error(rfp_fixed_effects(y ~ x1 | cluster, df, treatment = "d", level = 2),
               "level")
  expect_error(rfp_fixed_effects(y ~ x1 | cluster, df, treatment = "d", weights = "nope"),
               "weights: column 'nope' not found in the data", fixed = TRUE)
})

test_that("the printed table names the degrees of freedom it used", {
  skip_if_no_backend()
  trial <- rfp_simulate("cluster_trial", seed = 3)
  f <- y ~ x1 + x2 + z | cluster
  expect_output(print(rfp_fixed_effects(f, trial, treatment = "d", fe = ~ stratum)),
                "t on DF = G - 1 degrees of freedom", fixed = TRUE)
  expect_output(print(rfp_fixed_effects(f, trial, treatment = "d", fe = ~ stratum,
                                        vcov = "CR2")),
                "Satterthwaite", fixed = TRUE)
})
