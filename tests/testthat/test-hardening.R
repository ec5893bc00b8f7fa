# Issue 10 (hardening): settings checked by the backend's one validator, with
# the same messages as Python; saving and loading without evaluating R
# objects; overlapping roles and extreme data named.

python_message <- function(expr) {
  tryCatch({expr; NA_character_}, error = function(e) rfp:::clean_message(conditionMessage(e)))
}

test_that("settings out of range or of the wrong type: the Python validator's message, by name", {
  skip_if_no_backend()
  df <- clustered_data()
  df$d <- as.numeric(df$g %in% c("c01", "c03", "c05"))
  validate <- function(...) {
    given <- list(...)
    function() rfp:::backend()$rfp$settings$validate(given, "fit")
  }
  cases <- list(
    list(quote(rfp(y ~ x1 | g, df, max_steps = 0)), validate(max_steps = 0),
         "max_steps must be a whole number >= 1 (default 2000), got 0"),
    list(quote(rfp(y ~ x1 | g, df, clip_norm = -1)), validate(clip_norm = -1),
         "clip_norm must be a number > 0 or None (NULL in R) (default 1), got -1"),
    list(quote(rfp(y ~ x1 | g, df, seed = -1)), validate(seed = -1),
         "seed must be a whole number >= 0 (default 0), got -1"),
    list(quote(rfp(y ~ x1 | g, df, alpha = "0.5")), validate(alpha = "0.5"),
         "alpha must be a number in [0, 1] (default 0.5), got '0.5' (a string: pass the number itself)"),
    list(quote(rfp(y ~ x1 | g, df, inner_steps = 2.7)), validate(inner_steps = 2.7),
         "inner_steps must be a whole number in [0, 10000] (default 1), got 2.7"),
    list(quote(rfp(y ~ x1 | g, df, first_order = "False")), validate(first_order = "False"),
         "first_order must be True or False (TRUE or FALSE in R) (default False), got 'False'"),
    list(quote(rfp(y ~ x1 | g, df, eval_every = 0L)), validate(eval_every = 0L),
         "eval_every must be a whole number >= 1 (default 10), got 0"))
  for (case in cases) {
    r_message <- tryCatch({eval(case[[1]]); NA_character_}, error = conditionMessage)
    expect_identical(r_message, case[[3]])
    expect_identical(python_message(case[[2]]()), case[[3]])
  }
})

test_that("numbers reach Python unchanged: 1e12 and 0L are named, not coerced", {
  skip_if_no_backend()
  df <- clustered_data()
  expect_warning(err <- tryCatch(rfp(y ~ x1 | g, df, model = "neural_ode", steps = 1e12),
                                 error = conditionMessage), NA)
  expect_identical(err, "steps must be a whole number in [1, 1000], got 1000000000000")
  expect_error(rfp(y ~ x1 | g, df, model = "neural_ode", steps = 0L),
               "steps must be a whole number in [1, 1000], got 0", fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, model = "neural_ode", width = 0L),
               "width must be a whole number in [1, 10000], got 0", fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, hidden = "32"), "hidden must be a list of layer widths",
               fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, alpha = NA), "alpha must be a number in [0, 1] (default 0.5), got NaN",
               fixed = TRUE)
  fit <- rfp(y ~ x1 | g, df, hidden = 3, max_steps = 20, patience = NULL, seed = 2)
  expect_identical(fit$settings$hidden, 3L)
  expect_identical(fit$settings$max_steps, 20L)
})

test_that("rfp_effect, rfp_compare and rfp_balance check their settings the same way", {
  skip_if_no_backend()
  df <- clustered_data()
  df$d <- as.numeric(df$g %in% c("c01", "c03", "c05"))
  for (method in c("dml", "aipw", "t_learner")) {
    expect_error(rfp_effect(y ~ x1 | g, df, "d", method = method, max_steps = 0L),
                 "max_steps must be a whole number >= 1 (default 2000), got 0", fixed = TRUE)
    expect_error(rfp_effect(y ~ x1 | g, df, "d", method = method, clip_norm = -1),
                 "clip_norm must be a number > 0", fixed = TRUE)
  }
  expect_error(rfp_effect(y ~ x1 | g, df, "d", seed = -1),
               "seed must be a whole number >= 0 (default 0), got -1", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, "d", methods = "dml", learning_rate = 0),
               "learning_rate must be a number > 0 (default 0.01), got 0", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, "d", methods = "dml", folds = 1),
               "folds must be a whole number >= 2, got 1", fixed = TRUE)
  expect_error(rfp_balance(y ~ x1 | g, df, "d", method = "hierarchical", lambda = -1),
               "lambda must be a number >= 0 (Inf allowed), got -1", fixed = TRUE)
  expect_error(rfp_balance(y ~ x1 | g, df, "d", max_iter = 0),
               "max_iter must be a whole number in [1, 100000], got 0", fixed = TRUE)
})
