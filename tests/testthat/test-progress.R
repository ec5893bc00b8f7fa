# Progress: one rule with the Python backend (a bar when the session is
# interactive or stderr is a terminal, never while knitting; progress = to
# force), written to stderr with the elapsed and remaining time.

test_that("the rule: interactive or a terminal, not while knitting; TRUE/FALSE force it", {
  expect_true(rfp:::wants_progress(NULL, interactive = TRUE, terminal = FALSE))
  expect_true(rfp:::wants_progress(NULL, interactive = FALSE, terminal = TRUE))
  expect_false(rfp:::wants_progress(NULL, interactive = FALSE, terminal = FALSE))
  old <- options(knitr.in.progress = TRUE)
  on.exit(options(old), add = TRUE)
  expect_false(rfp:::wants_progress(NULL, interactive = TRUE, terminal = TRUE))
  expect_true(rfp:::wants_progress(TRUE, interactive = FALSE, terminal = FALSE))
  expect_false(rfp:::wants_progress(FALSE, interactive = TRUE, terminal = TRUE))
  expect_error(rfp:::wants_progress("yes"), "progress must be TRUE or FALSE")
  # the tests run under Rscript with captured output: no bar by default
  expect_false(rfp:::wants_progress(NULL))
})

test_that("the bar goes to stderr with elapsed and remaining time, and clears its line", {
  message_lines <- capture.output(type = "message", {
    standard <- capture.output({
      bar <- rfp:::stderr_bar(4, "fits")
      Sys.sleep(0.15)
      bar$update(2)
      bar$close()
    })
  })
  expect_identical(standard, character(0))
  text <- paste(message_lines, collapse = "")
  expect_match(text, "rfp \\[=+ +\\]  50% 2/4 fits \\| elapsed 0:00 \\| remaining ~0:00")
  expect_match(text, "0% 0/4 fits | elapsed 0:00 | remaining ~?", fixed = TRUE)
  expect_identical(rfp:::clock(3725), "1:02:05")
  expect_identical(rfp:::clock(65), "1:05")
})

test_that("fits, effects and comparisons show their bar on stderr only when asked", {
  skip_if_no_backend()
  df <- effects_r()$data
  run <- function(expr) {
    standard <- NULL
    err <- capture.output(type = "message", standard <- capture.output(value <- expr))
    list(stdout = standard, stderr = paste(err, collapse = ""))
  }
  fit <- run(rfp(y ~ x1 | g, data = df, model = "linear", max_steps = 30, progress = TRUE))
  expect_identical(fit$stdout, character(0))
  expect_match(fit$stderr, "/30 steps | elapsed", fixed = TRUE)
  expect_match(fit$stderr, "remaining <= ", fixed = TRUE)  # early stopping: an upper bound
  effect <- run(rfp_effect(y ~ x1 + x2 + z | g, df, "d", folds = 2, model = "linear",
                           max_steps = 20, progress = TRUE, repeats = 1,
                           nuisance = "method"))
  expect_identical(effect$stdout, character(0))
  expect_match(effect$stderr, "/4 fits | elapsed", fixed = TRUE)   # E[Y|X], E[D|X] x 2 folds
  cmp <- run(suppressWarnings(rfp_compare(y ~ x1 + x2 + z | g, df, "d", folds = 2,
                                          methods = c("fixed_effects", "dml"),
                                          model = "linear", max_steps = 20, progress = TRUE,
                                          repeats = 1, nuisance = "method")))
  expect_match(cmp$stderr, "/4 fits | elapsed", fixed = TRUE)
  quiet <- run(rfp_effect(y ~ x1 + x2 + z | g, df, "d", folds = 2, model = "linear",
                          max_steps = 20))
  expect_identical(quiet$stderr, "")
  expect_identical(quiet$stdout, character(0))
  expect_warning(rfp(y ~ x1 | g, data = df, model = "linear", max_steps = 5, verbose = FALSE),
                 "verbose = is now called progress =")
})

test_that("rfp(tune = TRUE) shows the cross-validation's bar, then restarts it for the refit", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 8, n_per = 12)
  standard <- NULL
  err <- capture.output(type = "message", standard <- capture.output(
    fit <- suppressWarnings(rfp(y ~ x1 + x2 | g, data = df, hidden = 4L, tune = TRUE,
                                tune_grid = list(alpha = c(0.5, 0.25)), folds = 2L,
                                simple = FALSE, max_steps = 40L, progress = TRUE))))
  expect_identical(standard, character(0))
  text <- paste(err, collapse = "")
  # one shape group of 40 steps: the cross-validation's total
  expect_match(text, "rfp tune [", fixed = TRUE)
  expect_match(text, "0/40 steps | elapsed", fixed = TRUE)
  # the refit runs the chosen number of steps on all clusters
  expect_match(text, sprintf("rfp refit [%s", strrep(" ", 25)), fixed = TRUE)
  expect_match(text, sprintf("/%d steps | elapsed", fit$settings$max_steps), fixed = TRUE)
})
