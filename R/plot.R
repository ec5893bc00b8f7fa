# Plots of a fit in base graphics: the loss curves, and the fitted function
# along one covariate.

#' Plot a fit
#'
#' `which = "loss"` (default): the training objective \eqn{R_k} and the
#' held-out loss against the step, with the best step marked (both on the
#' backend's standardised scale). `which = "covariate"`: the fitted function
#' along one control variable, the others held at their median (numbers) or
#' most common value (factors, characters), over the data.
#'
#' @param x A fit from [rfp()].
#' @param which `"loss"` or `"covariate"` (or 1, 2). Giving `covariate`
#'   alone implies `"covariate"`.
#' @param covariate Name of a control variable (default: the first).
#' @param n Number of grid points along a numeric covariate.
#' @param ... Further arguments to [graphics::plot()].
#' @return Invisibly, the plotted numbers: the history (`"loss"`), or a data
#'   frame with the grid and the predictions (`"covariate"`).
#' @export
plot.rfp <- function(x, which = c("loss", "covariate"), covariate = NULL, n = 100, ...) {
  if (is.numeric(which)) which <- c("loss", "covariate")[which[1]]
  which <- if (missing(which) && !is.null(covariate)) "covariate" else match.arg(which)
  if (which == "loss") plot_loss(x, ...) else plot_covariate(x, covariate, n, ...)
}

plot_loss <- function(fit, ...) {
  h <- fit$history
  curves <- cbind(train = h$train, held_out = h$validation)
  has_held_out <- any(is.finite(h$validation))
  finite <- curves[is.finite(curves)]
  log_axis <- if (length(finite) && all(finite > 0)) "y" else ""
  graphics::matplot(h$step, curves, type = "l", lty = c(1, 2), col = c("black", "firebrick"),
                    log = log_axis, xlab = "step", ylab = "loss (standardised)",
                    main = sprintf("rfp: alpha = %s, inner_steps = %d", format(fit$settings$alpha),
                                   fit$settings$inner_steps), ...)
  graphics::abline(v = fit$best_step, lty = 3, col = "grey40")
  graphics::legend("topright", bty = "n", lty = c(1, 2, 3),
                   col = c("black", "firebrick", "grey40"),
                   legend = c("training objective R_k",
                              if (has_held_out) "held-out loss" else "held-out loss (none)",
                              "best step"))
  invisible(h)
}

plot_covariate <- function(fit, covariate, n, ...) {
  if (loaded_fit(fit)) no_training_data("the covariate plot shows the training rows")
  data <- fit$design$covariates
  if (is.null(covariate)) {
    numeric_cols <- names(data)[vapply(data, is.numeric, logical(1))]
    covariate <- if (length(numeric_cols)) numeric_cols[1] else names(data)[1]
  }
  if (!is.character(covariate) || length(covariate) != 1 || !covariate %in% names(data)) {
    stop(sprintf("covariate must name one control variable: %s",
                 paste0("'", names(data), "'", collapse = ", ")), call. = FALSE)
  }
  values <- data[[covariate]]
  categorical <- !is.numeric(values)
  grid <- if (categorical) sort(unique(values)) else seq(min(values), max(values), length.out = n)
  newdata <- typical_row(data)[rep(1, length(grid)), , drop = FALSE]
  newdata[[covariate]] <- grid
  rownames(newdata) <- NULL
  curve <- data.frame(value = grid, prediction = predict(fit, newdata = newdata))
  names(curve)[1] <- covariate

  others <- setdiff(names(data), covariate)
  subtitle <- if (length(others)) "others at their median / most common value" else ""
  if (categorical) {
    at <- match(values, grid)
    graphics::plot(jitter(at, 0.3), fit$y, col = "grey60", xaxt = "n", xlab = covariate,
                   ylab = fit$design$outcome, sub = subtitle, ...)
    graphics::axis(1, at = seq_along(grid), labels = as.character(grid))
    graphics::points(seq_along(grid), curve$prediction, pch = 19, col = "firebrick", cex = 1.4)
  } else {
    graphics::plot(values, fit$y, col = "grey60", xlab = covariate, ylab = fit$design$outcome,
                   sub = subtitle, ...)
    graphics::lines(grid, curve$prediction, col = "firebrick", lwd = 2)
  }
  invisible(curve)
}

# One row: the median of each numeric column, the most common value of others.
typical_row <- function(data) {
  row <- lapply(data, function(v) {
    if (is.numeric(v) && !is.factor(v)) return(stats::median(v))
    counts <- table(v)
    mode <- names(counts)[which.max(counts)]
    if (is.factor(v)) factor(mode, levels = levels(v))
    else if (is.logical(v)) as.logical(mode)
    else mode
  })
  as.data.frame(row, stringsAsFactors = FALSE, optional = TRUE)
}
