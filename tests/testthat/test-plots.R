# Plots are ggplot objects with titles, axis labels and legends, drawing the
# numbers of the result; plot() draws and returns the same ggplot.

labels_of <- function(p) {
  built <- ggplot2::ggplot_build(p)
  list(title = p$labels$title, x = p$labels$x, y = p$labels$y, built = built)
}

test_that("the loss plot shows the training objective and the held-out loss as two panels", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 10, n_per = 10)
  fit <- rfp(y ~ x1 + x2 | g, df, model = "linear", max_steps = 40, eval_every = 10)
  p <- autoplot(fit)
  expect_s3_class(p, "ggplot")
  expect_match(p$labels$title, "alpha = 0.5, inner_steps = 1")
  expect_identical(p$labels$x, "outer step")
  expect_identical(p$labels$y, "loss (standardised scale)")
  expect_match(p$labels$subtitle, "Two different quantities")
  panels <- levels(p$data$quantity)
  expect_identical(panels, c("training objective R_k (training clusters)",
                             "pooled loss L (held-out clusters)"))
  expect_s3_class(p$facet, "FacetWrap")
  # each panel holds its own quantity from the history
  train <- p$data[p$data$quantity == panels[1], ]
  held <- p$data[p$data$quantity == panels[2], ]
  expect_equal(train$loss, fit$history$train)
  expect_equal(held$loss, fit$history$validation)
  expect_identical(ggplot2::ggplot_build(p)$layout$layout$PANEL, factor(1:2))
  # the best step is marked, with a legend entry
  expect_true(any(vapply(p$layers, function(l) inherits(l$geom, "GeomVline"), logical(1))))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  drawn <- withVisible(plot(fit))
  expect_false(drawn$visible)
  expect_s3_class(drawn$value, "ggplot")
  expect_identical(plot(fit, main = "my title")$labels$title, "my title")
})

test_that("the covariate plot colours the points by cluster and draws the fit", {
  skip_if_no_backend()
  df <- clustered_data(n_clusters = 10, n_per = 10)
  fit <- rfp(y ~ x1 + x2 | g, df, model = "linear", max_steps = 20)
  p <- autoplot(fit, covariate = "x2", n = 30)
  expect_identical(p$labels$x, "x2")
  expect_identical(p$labels$y, "y")
  expect_identical(p$labels$colour, "cluster")
  expect_match(p$labels$title, "rfp fit along x2")
  points <- ggplot2::layer_data(p, 1)
  expect_identical(length(unique(points$colour)), 10L)
  expect_equal(points$y, df$y)
  curve <- p$layers[[2]]$data
  x <- cbind(1, median(df$x1), curve$value)
  expect_equal(curve$prediction, drop(x %*% coef(fit)), tolerance = 1e-8)
  expect_error(autoplot(fit, covariate = "nope"), "must name one control variable")
})

test_that("effects, comparisons and balancing weights plot with titles and legends", {
  skip_if_no_backend()
  r <- effects_r()
  p <- autoplot(r$ate)
  expect_identical(p$labels$title, "Effect of d on y")
  bars <- ggplot2::layer_data(p, 2)
  expect_equal(c(bars$xmin, bars$xmax), c(r$ate$conf.low, r$ate$conf.high))
  tau <- autoplot(r$learner, covariate = "x1")
  expect_identical(tau$labels$colour, "rows")
  expect_equal(tau$data$tau, r$learner$nuisance$tau)
  cmp <- r$compare
  p <- autoplot(cmp)
  expect_identical(p$labels$colour, "estimand")
  expect_identical(p$labels$x, "estimate")
  points <- ggplot2::layer_data(p, 3)
  expect_equal(sort(points$x), sort(cmp$estimate[is.finite(cmp$estimate)]))
  truth <- p$layers[[4]]$data
  expect_equal(truth$truth, cmp$truth[is.finite(cmp$truth)])
  b <- autoplot(r$entropy, threshold = 0.2)
  expect_match(b$labels$title, "Balance: entropy balancing")
  expect_identical(b$labels$x, "|standardised mean difference|")
  expect_identical(levels(b$data$weighting), c("before weighting", "after weighting"))
  expect_equal(b$data$smd, abs(c(r$entropy$balance$smd_before, r$entropy$balance$smd_after)))
  expect_equal(unique(ggplot2::layer_data(b, 2)$xintercept), 0.2)
})
