# weights = case (sampling) weights, as in lm, fixest and estimatr: a column
# name, a vector or a bare column name; checked against lm(weights =),
# estimatr::lm_robust(weights =) and duplicated rows; errors name the row;
# the former modes "obs" / "cluster" warn and map to equal_clusters.

weighted_data <- function(n_clusters = 12, n_per = 10, seed = 4, clustered = FALSE) {
  set.seed(seed)
  n <- n_clusters * n_per
  g <- rep(seq_len(n_clusters), each = n_per)
  u <- rnorm(n_clusters)[g]
  x1 <- rnorm(n) + 0.5 * u
  x2 <- rnorm(n)
  d <- if (clustered) as.numeric(g %% 2 == 0) else as.numeric(runif(n) < plogis(0.7 * x1))
  y <- 1 + 0.6 * d + x1 - 0.5 * x2 + u + rnorm(n)
  w <- sample(0:3, n, replace = TRUE)          # zeros included (a row of weight 0 is dropped)
  first <- !duplicated(g)
  w[first] <- pmax(w[first], 1L)               # every cluster keeps a row
  data.frame(y = y, d = d, x1 = x1, x2 = x2, g = g, s = sample(letters[1:4], n, TRUE),
             w = w, stringsAsFactors = FALSE)
}

duplicate_rows <- function(df, k) df[rep(seq_len(nrow(df)), k), , drop = FALSE]

test_that("a linear fit with weights is lm's weighted least squares; column, vector, name agree", {
  skip_if_no_backend()
  df <- weighted_data()
  df$w <- df$w * seq(0.5, 1.5, length.out = nrow(df))
  args <- list(y ~ x1 + x2 | g, data = df, model = "linear", alpha = 1, max_steps = 3000,
               patience = NULL, learning_rate = 0.05, progress = FALSE)
  by_name <- do.call(rfp, c(args, list(weights = "w")))
  by_vector <- do.call(rfp, c(args, list(weights = df$w)))
  bare <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", alpha = 1, max_steps = 3000,
              patience = NULL, learning_rate = 0.05, progress = FALSE, weights = w)
  reference <- coef(lm(y ~ x1 + x2, data = df, weights = w))
  expect_equal(unname(coef(by_name)), unname(reference), tolerance = 1e-4)
  expect_identical(coef(by_vector), coef(by_name))
  expect_identical(coef(bare), coef(by_name))
  expect_gt(max(abs(reference - coef(lm(y ~ x1 + x2, data = df)))), 1e-2)   # weights matter
  expect_equal(unname(weights(by_name)), df$w)
  expect_output(print(summary(by_name)), "weights: case weights")
})

test_that("weights follow subset and na.omit", {
  skip_if_no_backend()
  df <- weighted_data()
  df$x2[c(3, 40)] <- NA
  keep <- df$g != 5
  settings <- list(model = "linear", alpha = 1, max_steps = 40, patience = NULL,
                   progress = FALSE)
  a <- suppressMessages(do.call(rfp, c(list(y ~ x1 + x2 | g, data = df, weights = df$w,
                                            subset = keep, na.action = na.omit), settings)))
  rows <- which(keep & !is.na(df$x2))
  b <- do.call(rfp, c(list(y ~ x1 + x2 | g, data = df[rows, ], weights = df$w[rows]), settings))
  expect_identical(coef(a), coef(b))
  expect_equal(unname(weights(a)), df$w[rows])
})

test_that("the fixed-effects row with weights equals estimatr::lm_robust(weights =)", {
  skip_if_no_backend()
  skip_if_not_installed("estimatr")
  df <- weighted_data()
  df$w <- df$w * seq(0.5, 1.5, length.out = nrow(df))
  for (fe in list(NULL, ~s)) {
    cmp <- suppressWarnings(rfp_compare(y ~ x1 + x2 | g, df, treatment = "d", fe = fe,
                                        methods = "fixed_effects", weights = "w",
                                        progress = FALSE))
    rhs <- if (is.null(fe)) "d + x1 + x2" else "d + x1 + x2 + factor(s)"
    # rows of weight 0 leave first, as fixest does (estimatr would count them in n)
    ref <- estimatr::lm_robust(stats::as.formula(paste("y ~", rhs)), data = df[df$w > 0, ],
                               weights = w, clusters = g, se_type = "stata")
    expect_equal(cmp$estimate, unname(coef(ref)["d"]), tolerance = 1e-8)
    expect_equal(cmp$std.error, unname(ref$std.error["d"]), tolerance = 1e-8)
  }
  expect_error(rfp_compare(y ~ x1 + x2 | g, df, treatment = "d", methods = "fixed_effects",
                           weights = "w", vcov = "CR2", progress = FALSE),
               "vcov = 'CR2' with case weights is not available", fixed = TRUE)
})

test_that("DML and AIPW with whole-number weights equal the duplicated rows", {
  skip_if_no_backend()
  df <- weighted_data(clustered = TRUE)
  dup <- duplicate_rows(df, df$w)
  common <- list(y ~ x1 + x2 | g, treatment = "d", folds = 3L, repeats = 1L, model = "linear",
                 alpha = 1, progress = FALSE)
  for (method in c("dml", "aipw")) {
    extra <- if (method == "aipw") list(method = "aipw", propensity_penalty = 1) else list()
    a <- suppressWarnings(do.call(rfp_effect, c(common, extra, list(data = df, weights = "w"))))
    b <- suppressWarnings(do.call(rfp_effect, c(common, extra, list(data = dup))))
    expect_equal(a$estimate, b$estimate, tolerance = 1e-10)
    expect_equal(a$std.error, b$std.error, tolerance = 1e-10)
  }
})

test_that("entropy balancing with weights equals the duplicated rows; other methods refuse", {
  skip_if_no_backend()
  df <- weighted_data()
  a <- rfp_balance(y ~ x1 + x2 | g, df, treatment = "d", weights = df$w)
  b <- rfp_balance(y ~ x1 + x2 | g, duplicate_rows(df, df$w), treatment = "d")
  expect_equal(a$estimate, b$estimate, tolerance = 1e-8)
  summed <- tapply(b$weights, rep(seq_len(nrow(df)), df$w), sum)
  expect_equal(unname(a$weights[df$w > 0]), unname(as.numeric(summed)), tolerance = 1e-8)
  expect_true(all(a$weights[df$w == 0] == 0))
  expect_error(rfp_balance(y ~ x1 + x2 | g, df, treatment = "d", method = "hierarchical",
                           weights = "w"),
               "supported by method = \"entropy\" only", fixed = TRUE)
})

test_that("bad weights are errors naming weights and the row, as in Python", {
  skip_if_no_backend()
  df <- weighted_data(n_clusters = 4, n_per = 5)
  fit <- function(wt) rfp(y ~ x1 | g, df, model = "linear", max_steps = 1, progress = FALSE,
                         weights = wt)
  expect_error(fit(replace(df$w, 3, -1)), paste0(
    "weights must be finite numbers >= 0 (one case weight per row), but row 3 is -1"),
    fixed = TRUE)
  expect_error(fit(replace(as.numeric(df$w), 7, NA)), "but row 7 is missing (NA/NaN)",
               fixed = TRUE)
  expect_error(fit(df$w[-1]), "weights has 19 value(s) but the data have 20 rows", fixed = TRUE)
  expect_error(fit("nope"), "weights: column 'nope' not found in the data", fixed = TRUE)
  expect_error(fit("s"), "weights (column 's') must be numeric", fixed = TRUE)
  expect_error(fit(rep(0, 20)), "weights are all zero", fixed = TRUE)
  df$k <- replace(df$w, 2, -3)
  expect_error(rfp_effect(y ~ x1 | g, df, treatment = "d", weights = "k", folds = 2L),
               paste("weights (column 'k') must be finite numbers >= 0 (one case weight per",
                     "row), but row 2 is -3"),
               fixed = TRUE)
  # the same message as the backend's
  py <- tryCatch(rfp:::backend()$facade$case_weight_values(c(1, -1)),
                 error = function(e) conditionMessage(e))
  expect_match(py, "but row 2 is -1", fixed = TRUE)
})

test_that("the former weights = \"obs\" / \"cluster\" warn and mean equal_clusters", {
  skip_if_no_backend()
  df <- weighted_data(n_clusters = 6, n_per = 6)
  settings <- list(y ~ x1 | g, data = df, model = "linear", max_steps = 30, patience = NULL,
                   progress = FALSE)
  expect_warning(old <- do.call(rfp, c(settings, list(weights = "cluster"))),
                 "use equal_clusters = TRUE", fixed = TRUE)
  new <- do.call(rfp, c(settings, list(equal_clusters = TRUE)))
  expect_identical(coef(old), coef(new))
  expect_true(old$settings$equal_clusters)
  expect_warning(do.call(rfp, c(settings, list(weights = "obs"))), "deprecated")
  expect_error(suppressWarnings(do.call(rfp, c(settings, list(weights = "cluster",
                                                              equal_clusters = FALSE)))),
               "contradicts equal_clusters = FALSE", fixed = TRUE)
})
