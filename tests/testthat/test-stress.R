# Many short fits in one session: Python objects are created and released
# by R's garbage collector over and over; nothing may crash.  No held-out
# clusters (patience = NULL): the point is the boundary, not early stopping.

test_that("100 fit/predict cycles followed by gc() do not crash", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 4, n_per = 8)
  new <- df[1:5, c("x1", "x2")]
  results <- numeric(0)
  for (i in seq_len(100)) {
    fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 10, patience = NULL,
               seed = i %% 3)
    results[i] <- sum(predict(fit, newdata = new))
    rm(fit)
    if (i %% 10 == 0) gc()
  }
  gc()
  expect_true(all(is.finite(results)))
  # the same seed gives the same fit
  expect_identical(results[3], results[6])
  fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 10, patience = NULL,
             seed = 0)
  expect_identical(sum(predict(fit, newdata = new)), results[3])
})
