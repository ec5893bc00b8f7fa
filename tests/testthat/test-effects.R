# rfp_effect(): R equals the Python API on the same data and settings;
# methods, warnings, bad input. Tiny linear fits (20 steps, 2 folds).

test_that("rfp_effect equals rfp.effect (dml, aipw ATE/ATT, t_learner) to 1e-10", {
  skip_if_no_backend()
  r <- effects_r()
  py <- effects_python()
  gaps <- c(
    dml = max(abs(c(r$dml$estimate - py$dml.estimate, r$dml$std.error - py$dml.std_error,
                    c(r$dml$conf.low, r$dml$conf.high) - py$dml.ci,
                    r$dml$diagnostics$variance_share - py$dml.variance_share,
                    r$dml$diagnostics$ess - py$dml.ess,
                    r$dml$nuisance$g - py$dml.g, r$dml$nuisance$m - py$dml.m))),
    aipw_ATE = max(abs(c(r$ate$estimate - py$aipw_ATE.estimate,
                         r$ate$std.error - py$aipw_ATE.std_error,
                         c(r$ate$conf.low, r$ate$conf.high) - py$aipw_ATE.ci,
                         r$ate$nuisance$e - py$aipw_ATE.e))),
    aipw_ATT = max(abs(c(r$att$estimate - py$aipw_ATT.estimate,
                         r$att$std.error - py$aipw_ATT.std_error,
                         c(r$att$conf.low, r$att$conf.high) - py$aipw_ATT.ci))),
    t_learner = max(abs(predict(r$learner, r$data[1:15, ]) - py$t_learner.tau)))
  message(sprintf("max |R - Python| effect difference: %s",
                  paste(sprintf("%s %.3g", names(gaps), gaps), collapse = ", ")))
  expect_true(all(gaps < 1e-10), label = paste(names(gaps), gaps, collapse = "; "))
  expect_identical(r$dml$estimand, "PLM")
  expect_identical(c(r$ate$estimand, r$att$estimand), c("ATE", "ATT"))
  expect_identical(c(r$dml$n, r$dml$n_clusters), c(120L, 12L))
  expect_setequal(unique(r$dml$nuisance$fold), 1:2)
  # each cluster lies in one fold
  expect_true(all(tapply(r$dml$nuisance$fold, r$data$g, function(f) length(unique(f))) == 1))
})

test_that("the method's rows of rfp_compare equal rfp_effect on the same folds", {
  skip_if_no_backend()
  r <- effects_r()
  cmp <- r$compare
  row <- function(method, estimand) cmp[cmp$method == method & cmp$estimand == estimand, ]
  expect_equal(row("dml", "PLM")$estimate, r$dml$estimate, tolerance = 1e-12)
  expect_equal(row("dml", "PLM")$std.error, r$dml$std.error, tolerance = 1e-12)
  expect_equal(row("aipw", "ATE")$estimate, r$ate$estimate, tolerance = 1e-12)
  expect_equal(row("aipw", "ATT")$std.error, r$att$std.error, tolerance = 1e-12)
})

test_that("repeated cross-fitting: the median over splits, the same in rfp_compare", {
  skip_if_no_backend()
  df <- trial_data()
  f <- y ~ x1 + x2 + z | g
  one <- function(seed) do.call(rfp_effect, c(list(f, df, "d", folds = 2, seed = seed,
                                                   repeats = 1), effect_settings))$estimate
  rep <- do.call(rfp_effect, c(list(f, df, "d", folds = 2, seed = 1, repeats = 3),
                               effect_settings))
  # split s uses seed + 7919 s (rfp.effects.folds.split_seed)
  expect_equal(rep$estimate, median(vapply(1 + 7919 * 0:2, one, numeric(1))),
               tolerance = 1e-12)
  expect_identical(rep$diagnostics$repeats, 3L)
  cmp <- do.call(rfp_compare, c(list(f, df, "d", methods = "dml", folds = 2, seed = 1,
                                     repeats = 3), effect_settings))
  expect_equal(cmp$estimate, rep$estimate, tolerance = 1e-12)
  expect_equal(cmp$std.error, rep$std.error, tolerance = 1e-12)
  expect_error(rfp_effect(f, df, "d", repeats = 0), "repeats must be a whole number >= 1")
})

test_that("a T-learner predicts tau(x) on new data, also after saveRDS", {
  skip_if_no_backend()
  r <- effects_r()
  learner <- r$learner
  expect_equal(learner$estimate, mean(predict(learner)))
  expect_true(is.na(learner$std.error))
  new <- r$data[c(3, 50, 90), c("x1", "x2", "z")]
  tau <- predict(learner, new)
  expect_length(tau, 3)
  path <- tempfile(fileext = ".rds")
  saveRDS(learner, path)
  restored <- readRDS(path)
  expect_identical(unname(predict(restored, new)), unname(tau))
  new$x1[2] <- NA
  expect_true(is.na(predict(learner, new)[2]))
  expect_error(predict(r$dml, new), "gives tau\\(x\\) for method = \"t_learner\"")
})

test_that("effects print, summarise, tidy, glance and plot", {
  skip_if_no_backend()
  r <- effects_r()
  expect_output(print(r$dml), "double ML, partially linear, PLM")
  expect_output(print(summary(r$ate)), "cross-fitting in 2 folds of whole clusters")
  expect_output(print(r$learner), "plug-in mean of tau\\(x\\)")
  tidied <- tidy(r$att)
  expect_identical(names(tidied), c("term", "estimate", "std.error", "statistic", "p.value",
                                    "conf.low", "conf.high", "df", "estimand", "method"))
  expect_identical(tidied$term, "d")
  expect_equal(tidied$p.value, 2 * pt(-abs(r$att$estimate / r$att$std.error), df = 11))
  g <- glance(r$dml)
  expect_identical(nrow(g), 1L)
  expect_true(all(c("variance_share", "ess", "converged", "folds") %in% names(g)))
  png_file <- tempfile(fileext = ".png")
  grDevices::png(png_file)
  plot(r$dml)
  curve <- plot(r$learner, covariate = "x1")$layers[[2]]$data
  grDevices::dev.off()
  expect_gt(file.size(png_file), 1000)
  expect_identical(names(curve), c("value", "prediction"))
})

test_that("a treatment the controls determine raises the variance-share warning in R", {
  skip_if_no_backend()
  set.seed(8)
  df <- clustered_data(n_clusters = 6, n_per = 10, seed = 8)
  df$dose <- 2 * df$x1 + rnorm(nrow(df), sd = 0.05)
  expect_warning(
    eff <- rfp_effect(y ~ x1 + x2 | g, df, treatment = "dose", folds = 2, model = "linear",
                      max_steps = 50, learning_rate = 0.1),
    class = "rfp_functional_form_warning")
  expect_gt(eff$diagnostics$variance_share, 0.9)
  expect_warning(rfp_effect(y ~ x1 + x2 | g, df, treatment = "dose", folds = 2,
                            model = "linear", max_steps = 50, learning_rate = 0.1),
                 "explains .* of the variance of treatment 'dose'")
})

test_that("bad input to rfp_effect gives clear R errors", {
  df <- clustered_data(n_clusters = 4, n_per = 5)
  df$d <- rep(c(0, 1), 10)
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "treated"),
               "treatment column 'treated' not found in data")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = d), "treatment must name one column")
  expect_error(rfp_effect(y ~ x1 + d | g, df, treatment = "d"),
               "the treatment 'd' also appears in the formula")
  df$dose <- seq_len(nrow(df))
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "dose", method = "aipw"),
               "treatment column 'dose' must be binary \\(0/1 or TRUE/FALSE\\) for AIPW")
  df$one <- 1
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "one"),
               "treatment column 'one' is constant")
  df$label <- ifelse(df$d == 1, "yes", "no")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "label"), "must be numeric")
  df$gap <- df$d
  df$gap[3] <- NA
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "gap"),
               "column 'gap' has 1 missing value\\(s\\).*na.action = na.omit")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", folds = 1), "folds must be")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", loss = "logistic"),
               "loss is set per nuisance")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", max_step = 5),
               "unknown setting\\(s\\) 'max_step'")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", design = "school"),
               "design must be one of 'cluster', 'individual' or None")
})

test_that("the backend's own input errors reach R with their message", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 4, n_per = 5)
  df$d <- rep(c(0, 1), 10)
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", design = "cluster", folds = 2,
                          model = "linear", max_steps = 10),
               "treatment column 'd' varies within cluster")
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", folds = 9, model = "linear",
                          max_steps = 10),
               "folds must be between 2 and the number of clusters \\(4\\)")
})

test_that("nuisance choice, trimming and default repeats reach the backend and come back", {
  skip_if_no_backend()
  df <- trial_data()
  f <- y ~ x1 + x2 + z | g
  r <- rfp_effect(f, df, "d", method = "aipw", folds = 3, seed = 2, nuisance = "linear",
                  trim = 0.2, propensity = "individual")
  py <- reticulate::import("rfp.effects.estimators")
  table <- reticulate::r_to_py(df[c("y", "d", "x1", "x2", "z", "g")])
  p <- py$aipw(table, "y", "d", list("x1", "x2", "z"), "g", folds = 3L, seed = 2L,
               nuisance = "linear", trim = 0.2, propensity = "individual")
  expect_equal(r$estimate, p$estimate, tolerance = 1e-12)
  expect_equal(r$std.error, p$std_error, tolerance = 1e-12)
  expect_identical(r$estimand, p$estimand)
  expect_identical(r$diagnostics$repeats, 5L)          # 12 clusters: default 5 splits
  expect_identical(unname(r$diagnostics$nuisance_models[c("mu0", "mu1", "m")]),
                   rep("linear", 3))
  expect_output(print(summary(r)), "nuisance_models")
  expect_error(rfp_effect(f, df, "d", nuisance = "forest"), "nuisance must be one of")
  expect_error(rfp_effect(f, df, "d", method = "aipw", trim = 0.7), "trim")
})

test_that("rfp_compare with a continuous treatment: FE and DML rows, the rest say why", {
  skip_if_no_backend()
  df <- trial_data()
  df$dose <- df$z + stats::rnorm(nrow(df))
  cmp <- rfp_compare(y ~ x1 + x2 | g, df, "dose", folds = 3, nuisance = "linear",
                     methods = c("fixed_effects", "dml", "aipw", "entropy_balancing"))
  expect_true(all(is.finite(cmp$estimate[cmp$method %in% c("fixed_effects", "dml")])))
  expect_true(all(grepl("^left out: binary treatment only",
                        cmp$note[cmp$method %in% c("aipw", "entropy_balancing")])))
  expect_identical(cmp$estimand[cmp$method == "fixed_effects"], "OLS")
})
