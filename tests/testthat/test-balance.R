# rfp_balance(): weights equal the Python API's; the balance table, the
# weighted ATT, the love plot, bad input.

test_that("rfp_balance equals rfp.balance (entropy, cluster, hierarchical) to 1e-10", {
  skip_if_no_backend()
  r <- effects_r()
  py <- effects_python()
  gaps <- c(
    entropy = max(abs(c(r$entropy$weights - py$entropy.weights,
                        r$entropy$balance$smd_after - py$entropy.smd_after,
                        c(r$entropy$estimate, r$entropy$std.error) - py$entropy.att))),
    cluster = max(abs(c(r$cluster$weights - py$cluster.weights,
                        r$cluster$balance$smd_after - py$cluster.smd_after))),
    hierarchical = max(abs(r$hierarchical$weights - py$hierarchical.weights)))
  message(sprintf("max |R - Python| balancing difference: %s",
                  paste(sprintf("%s %.3g", names(gaps), gaps), collapse = ", ")))
  expect_true(all(gaps < 1e-10), label = paste(names(gaps), gaps, collapse = "; "))
  # the weighted ATT is the entropy_balancing row of rfp_compare
  row <- r$compare[r$compare$method == "entropy_balancing", ]
  expect_equal(c(r$entropy$estimate, r$entropy$std.error, r$entropy$conf.low),
               c(row$estimate, row$std.error, row$conf.low), tolerance = 1e-10)
})

test_that("balancing weights target the ATT and balance the controls", {
  skip_if_no_backend()
  r <- effects_r()
  df <- r$data
  for (fit in r[c("entropy", "cluster")]) {
    expect_true(fit$converged)
    w <- fit$weights
    expect_identical(names(w), rownames(df))
    expect_true(all(w[df$d == 1] == 1))
    expect_equal(sum(w[df$d == 0]), sum(df$d == 1))
    expect_lt(max(abs(fit$balance$smd_after)), 1e-6)
    expect_identical(fit$balance$covariate, c("x1", "x2", "z"))
  }
  # cluster weights are constant within each control cluster
  control <- df$d == 0
  per_cluster <- tapply(r$cluster$weights[control], df$g[control], function(v) diff(range(v)))
  expect_lt(max(per_cluster), 1e-12)
  expect_equal(r$cluster$icc, 0.2)
  expect_identical(r$hierarchical$lambda, 0.5)
  # icc = NULL estimates it from the control clusters
  auto <- rfp_balance(y ~ x1 + x2 + z | g, df, "d", method = "cluster")
  expect_true(auto$icc >= 0 && auto$icc <= 1)
})

test_that("balancing weights print, summarise, tidy and make a love plot", {
  skip_if_no_backend()
  r <- effects_r()
  expect_output(print(r$entropy), "entropy balancing.*\n.*converged")
  expect_output(print(r$cluster), "of the control clusters")
  expect_output(print(summary(r$entropy)), "smd_before")
  expect_identical(names(tidy(r$entropy, what = "balance")),
                   c("covariate", "treated_mean", "treated_mean_weighted", "control_mean",
                     "control_mean_weighted", "sd", "smd_before", "smd_after"))
  png_file <- tempfile(fileext = ".png")
  grDevices::png(png_file)
  shown <- plot(r$entropy)
  grDevices::dev.off()
  expect_gt(file.size(png_file), 1000)
  expect_setequal(as.character(shown$data$covariate), c("x1", "x2", "z"))
})

test_that("bad input to rfp_balance gives clear R errors", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 4, n_per = 6)
  df$d <- rep(c(0, 1), 12)
  df$dose <- seq_len(nrow(df))
  expect_error(rfp_balance(y ~ x1 | g, df, "dose"),
               "treatment column 'dose' must be binary .* for balancing weights")
  expect_error(rfp_balance(y ~ x1 | g, df, "missing_column"),
               "treatment column 'missing_column' not found")
  expect_error(rfp_balance(y ~ x1 | g, df, "d", method = "cluster", icc = 2),
               "icc must be a number in \\[0, 1\\]")
  expect_error(rfp_balance(y ~ x1 | g, df, "d", method = "cluster", icc = 0.1),
               "treatment column 'd' varies within cluster")
})

test_that("na.omit drops rows with a missing treatment, with a message", {
  skip_if_no_backend()
  df <- effects_r()$data
  df$d[c(2, 7)] <- NA
  expect_message(fit <- rfp_balance(y ~ x1 + x2 + z | g, df, "d", na.action = na.omit),
                 "dropped 2 row\\(s\\) with a missing treatment or stratum \\(d: 2\\)")
  expect_length(fit$weights, nrow(df) - 2)
  expect_false(any(c("2", "7") %in% names(fit$weights)))
  expect_identical(fit$n_dropped, 2L)
})

test_that("balancing answers when exact balance is infeasible, and says so", {
  skip_if_no_backend()
  set.seed(7)
  df <- data.frame(g = rep(sprintf("c%02d", 1:20), each = 5), x = rnorm(100))
  df$d <- as.integer(df$g %in% sprintf("c%02d", 1:5))
  df$x[df$d == 1] <- df$x[df$d == 1] + 4         # treated beyond every control
  df$y <- df$x + df$d + rnorm(100)
  eb <- rfp_balance(y ~ x | g, df, "d")
  expect_identical(eb$balance_reached, "approximate")
  expect_match(eb$message, "approximate balance")
  expect_true(all(is.finite(eb$weights)) && is.finite(eb$estimate))
  none <- rfp_balance(y ~ x | g, df, "d", fallback = "none")
  expect_identical(none$balance_reached, "none")
  cb <- rfp_balance(y ~ x | g, df, "d", method = "cluster", icc = 0.1)
  expect_identical(cb$balance_reached, "approximate")
  expect_true(all(is.finite(cb$weights)))
  # the achieved imbalance is reported in the balance table
  expect_true(all(is.finite(cb$balance$smd_after)))
  expect_gt(max(abs(cb$balance$smd_after)), 0.01)
})
