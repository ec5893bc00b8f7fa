# Plots of every result as ggplot2 objects: autoplot() builds the plot,
# plot() draws it and returns it invisibly (so it can be changed and drawn
# again, or saved with ggplot2::ggsave()).

#' Plot rfp results with ggplot2
#'
#' `autoplot()` returns a ggplot; `plot()` draws the same plot and returns
#' it invisibly. Each has a title, axis labels and a legend.
#'
#' * A fit ([rfp()]), `which = "loss"` (default): the training objective
#'   \eqn{R_k} on the training clusters and the pooled loss on the held-out
#'   clusters against the step, in two panels (they are different
#'   quantities, on the backend's standardised scale), with the best step
#'   marked. `which = "covariate"`: the data against one control, points
#'   coloured by cluster, and the fitted function along it with the other
#'   controls at their median (numbers) or most common value (factors,
#'   characters). `which = "cv"` (a fit with `tune = TRUE`): the
#'   cross-validated held-out loss of every configuration against the step,
#'   the chosen one thicker, the chosen step and the training mean's loss
#'   marked.
#' * An effect ([rfp_effect()]): the estimate with its interval; for the
#'   T-learner \eqn{\hat\tau(x)} along one control over the rows'
#'   \eqn{\hat\tau(x_i)}, coloured by arm.
#' * A comparison ([rfp_compare()]): each estimate with its interval, one
#'   row per method and estimand, coloured by estimand; the truth, when
#'   known, as a mark on each row.
#' * Balancing weights ([rfp_balance()]): the love plot, |standardised mean
#'   difference| of each covariate before and after weighting, with a
#'   reference line at `threshold`.
#'
#' @param object,x An rfp result.
#' @param which For a fit: `"loss"`, `"covariate"` or `"cv"` (or 1, 2, 3). Giving
#'   `covariate` alone implies `"covariate"`.
#' @param covariate For a fit or a T-learner: the control on the x axis
#'   (default: the first numeric one).
#' @param n Number of grid points along a numeric covariate.
#' @param threshold For balancing weights: where to draw the reference line.
#' @param main A title replacing the default one.
#' @param ... For `plot()`: arguments of `autoplot()`; otherwise unused.
#' @return A ggplot object (`plot()`: invisibly, after drawing it).
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- rfp_simulate("tragic_triad", n_clusters = 12, seed = 1)
#'   fit <- rfp(y ~ x | cluster, data = df, hidden = 8L, max_steps = 100)
#'   autoplot(fit)                        # loss curves, two panels
#'   p <- plot(fit, covariate = "x")      # drawn, and returned
#'   p + ggplot2::labs(subtitle = "the fit along x")
#' }
#' }
#' @name rfp-plots
NULL

#' @rdname rfp-plots
#' @export
autoplot.rfp <- function(object, which = c("loss", "covariate", "cv"), covariate = NULL,
                         n = 100, ...) {
  if (is.numeric(which)) which <- c("loss", "covariate", "cv")[which[1]]
  which <- if (missing(which) && !is.null(covariate)) "covariate" else match.arg(which)
  switch(which, loss = loss_plot(object), covariate = covariate_plot(object, covariate, n),
         cv = cv_plot(object))
}

#' @rdname rfp-plots
#' @export
plot.rfp <- function(x, ..., main = NULL) draw(autoplot(x, ...), main)

#' @rdname rfp-plots
#' @export
autoplot.rfp_effect <- function(object, covariate = NULL, n = 100, ...) {
  if (object$method == "t_learner") return(tau_plot(object, covariate, n))
  estimates <- tidy(object)
  estimates$label <- sprintf("%s (%s)", effect_label(object$method), object$estimand)
  estimates$estimand <- object$estimand
  interval_plot(estimates, truth = NULL, level = object$level,
                title = sprintf("Effect of %s on %s", object$treatment, object$outcome))
}

#' @rdname rfp-plots
#' @export
plot.rfp_effect <- function(x, ..., main = NULL) draw(autoplot(x, ...), main)

#' @rdname rfp-plots
#' @export
autoplot.rfp_compare <- function(object, ...) {
  frame <- data.frame(label = sprintf("%s (%s)", object$method,
                                      ifelse(nzchar(object$estimand), object$estimand, "-")),
                      estimate = object$estimate, conf.low = object$conf.low,
                      conf.high = object$conf.high, estimand = object$estimand,
                      stringsAsFactors = FALSE)
  interval_plot(frame, truth = object$truth, level = attr(object, "level") %||% 0.95,
                title = sprintf("Effect of %s on %s", attr(object, "treatment") %||% "treatment",
                                attr(object, "outcome") %||% "outcome"))
}

#' @rdname rfp-plots
#' @export
plot.rfp_compare <- function(x, ..., main = NULL) draw(autoplot(x, ...), main)

#' @rdname rfp-plots
#' @export
autoplot.rfp_balance <- function(object, threshold = 0.1, ...) {
  table <- object$balance
  order <- rev(table$covariate)
  long <- data.frame(
    covariate = factor(rep(table$covariate, 2), levels = order),
    smd = abs(c(table$smd_before, table$smd_after)),
    weighting = factor(rep(c("before weighting", "after weighting"), each = nrow(table)),
                       levels = c("before weighting", "after weighting")))
  wide <- data.frame(covariate = factor(table$covariate, levels = order),
                     before = abs(table$smd_before), after = abs(table$smd_after))
  ggplot2::ggplot(long, ggplot2::aes(x = .data$smd, y = .data$covariate)) +
    ggplot2::geom_segment(data = wide, ggplot2::aes(x = .data$before, xend = .data$after,
                                                    y = .data$covariate,
                                                    yend = .data$covariate),
                          colour = "grey70", inherit.aes = FALSE) +
    ggplot2::geom_vline(ggplot2::aes(xintercept = threshold, linetype = "threshold"),
                        colour = "grey40") +
    ggplot2::geom_point(ggplot2::aes(shape = .data$weighting, colour = .data$weighting),
                        size = 2.6) +
    ggplot2::scale_shape_manual(values = c(`before weighting` = 1, `after weighting` = 19),
                                name = NULL) +
    ggplot2::scale_colour_manual(values = c(`before weighting` = "black",
                                            `after weighting` = "firebrick"), name = NULL) +
    ggplot2::scale_linetype_manual(values = c(threshold = "dashed"), name = NULL,
                                   labels = sprintf("|SMD| = %s", format(threshold))) +
    ggplot2::expand_limits(x = 0) +
    ggplot2::labs(title = sprintf("Balance: %s", balance_label(object)),
                  subtitle = sprintf("%s on %d covariate(s); ESS of the control rows %s",
                                     object$treatment, nrow(table), format(round(object$ess, 1))),
                  x = "|standardised mean difference|", y = NULL) +
    ggplot2::theme_minimal() + ggplot2::theme(legend.position = "bottom")
}

#' @rdname rfp-plots
#' @export
plot.rfp_balance <- function(x, ..., main = NULL) draw(autoplot(x, ...), main)

# ---- helpers --------------------------------------------------------------

draw <- function(p, main = NULL) {
  if (!is.null(main)) p <- p + ggplot2::labs(title = main)
  print(p)
  invisible(p)
}

loss_plot <- function(fit) {
  h <- fit$history
  quantities <- c("training objective R_k (training clusters)",
                  "pooled loss L (held-out clusters)")
  long <- data.frame(step = rep(h$step, 2), loss = c(h$train, h$validation),
                     quantity = factor(rep(quantities, each = nrow(h)), levels = quantities))
  long <- long[is.finite(long$loss), , drop = FALSE]
  has_held_out <- any(long$quantity == quantities[2])
  p <- ggplot2::ggplot(long, ggplot2::aes(x = .data$step, y = .data$loss,
                                          colour = .data$quantity)) +
    ggplot2::geom_line() +
    ggplot2::geom_vline(ggplot2::aes(xintercept = fit$best_step, linetype = "best step"),
                        colour = "grey40") +
    ggplot2::facet_wrap(~quantity, ncol = 1, scales = "free_y") +
    ggplot2::scale_colour_manual(values = stats::setNames(c("black", "firebrick"), quantities),
                                 guide = "none") +
    ggplot2::scale_linetype_manual(values = c(`best step` = "dotted"), name = NULL,
                                   labels = sprintf("best step (%d)", fit$best_step)) +
    ggplot2::labs(title = sprintf("rfp training: alpha = %s, inner_steps = %d",
                                  format(fit$settings$alpha), fit$settings$inner_steps),
                  subtitle = if (has_held_out) {
                    paste0("Two different quantities: the objective training minimises (top)\n",
                           "and the held-out loss that decides early stopping (bottom)")
                  } else {
                    "The objective training minimises (no held-out clusters: patience = NULL)"
                  },
                  x = "outer step", y = "loss (standardised scale)") +
    ggplot2::theme_minimal() + ggplot2::theme(legend.position = "bottom")
  if (nrow(long) && all(long$loss > 0)) p <- p + ggplot2::scale_y_log10()
  p
}

cv_plot <- function(fit) {
  curves <- fit$cv_curves
  if (is.null(curves)) {
    stop("this fit was not tuned: the cross-validation plot needs rfp(..., tune = TRUE)",
         call. = FALSE)
  }
  cv <- fit$cv
  # the candidates solved directly: the mean and the best linear model, as lines
  lines <- data.frame(what = "training mean", loss = cv$cv_loss[nrow(cv)])
  linear <- which(cv$model == "linear")
  if (length(linear)) {
    lines <- rbind(lines, data.frame(what = "best linear model",
                                     loss = min(cv$cv_loss[linear])))
  }
  chosen_row <- cv[cv$chosen, , drop = FALSE]
  if (any(curves$chosen)) {
    curves$config[curves$chosen] <- paste0(curves$config[curves$chosen][1], " (chosen)")
  } else {
    lines$what[lines$what == "best linear model" & chosen_row$model == "linear"] <-
      "best linear model (chosen)"
    lines$what[lines$what == "training mean" & chosen_row$model == "mean"] <-
      "training mean (chosen)"
  }
  n_net <- length(unique(curves$config))
  p <- ggplot2::ggplot(curves, ggplot2::aes(x = .data$step, y = .data$cv_loss)) +
    ggplot2::geom_line(ggplot2::aes(colour = .data$config, linewidth = .data$chosen)) +
    ggplot2::geom_hline(data = lines, ggplot2::aes(yintercept = .data$loss,
                                                   linetype = .data$what), colour = "black") +
    ggplot2::scale_linewidth_manual(values = c(`FALSE` = 0.4, `TRUE` = 1.2), guide = "none") +
    ggplot2::labs(title = sprintf("Cross-validation across clusters (%d configurations)",
                                  n_net),
                  subtitle = paste("Held-out loss averaged over folds of whole clusters;",
                                   "the mean and the linear models are solved directly"),
                  x = "outer step", y = "held-out loss (standardised scale)",
                  colour = "configuration", linetype = NULL) +
    ggplot2::theme_minimal() + ggplot2::theme(legend.position = "right")
  if (any(curves$chosen)) {
    p <- p + ggplot2::geom_vline(xintercept = chosen_row$step[1], colour = "grey40",
                                 linetype = "dotted")
  }
  if (!nrow(curves)) p <- p + ggplot2::xlim(0, 1)
  p
}

covariate_plot <- function(fit, covariate, n) {
  if (loaded_fit(fit)) no_training_data("the covariate plot shows the training rows")
  data <- fit$design$covariates
  covariate <- pick_covariate(data, covariate)
  values <- data[[covariate]]
  categorical <- !is.numeric(values)
  grid <- if (categorical) sort(unique(values)) else seq(min(values), max(values), length.out = n)
  curve <- along(data, covariate, grid, function(newdata) predict(fit, newdata = newdata))
  points <- data.frame(value = values, y = fit$y, cluster = factor(fit$cluster))
  n_clusters <- nlevels(points$cluster)
  line <- if (ncol(data) > 1) "the fit (other controls at median / mode)" else "the fit"
  p <- ggplot2::ggplot(points, ggplot2::aes(x = .data$value, y = .data$y)) +
    if (categorical) {
      ggplot2::geom_jitter(ggplot2::aes(colour = .data$cluster), width = 0.2, height = 0,
                           alpha = 0.6, size = 1.2)
    } else {
      ggplot2::geom_point(ggplot2::aes(colour = .data$cluster), alpha = 0.6, size = 1.2)
    }
  curve_layer <- if (categorical) {
    ggplot2::geom_point(data = curve, ggplot2::aes(x = .data$value, y = .data$prediction,
                                                   shape = line), size = 3.5)
  } else {
    ggplot2::geom_line(data = curve, ggplot2::aes(x = .data$value, y = .data$prediction,
                                                  linetype = line), linewidth = 1)
  }
  p + curve_layer +
    ggplot2::scale_linetype_manual(values = stats::setNames("solid", line), name = NULL) +
    ggplot2::scale_shape_manual(values = stats::setNames(18, line), name = NULL) +
    ggplot2::scale_colour_discrete(name = "cluster",
                                   guide = if (n_clusters > 12) "none" else "legend") +
    ggplot2::labs(title = sprintf("rfp fit along %s (%s model, alpha = %s)", covariate,
                                  fit$settings$model, format(fit$settings$alpha)),
                  subtitle = sprintf("points: the data, coloured by cluster (%d clusters)",
                                     n_clusters),
                  x = covariate, y = fit$design$outcome) +
    ggplot2::theme_minimal() + ggplot2::theme(legend.position = "bottom")
}

tau_plot <- function(x, covariate, n) {
  data <- x$design$covariates
  covariate <- pick_covariate(data, covariate)
  values <- data[[covariate]]
  if (!is.numeric(values)) stop("covariate must be numeric to plot tau(x) along it", call. = FALSE)
  grid <- seq(min(values), max(values), length.out = n)
  curve <- along(data, covariate, grid, function(newdata) predict(x, newdata = newdata))
  rows <- data.frame(value = values, tau = x$nuisance$tau,
                     arm = factor(ifelse(x$nuisance$treatment == 1, "treated", "control"),
                                  levels = c("treated", "control")))
  line <- "tau(x) along the covariate"
  mean_line <- sprintf("mean of tau(x) (%s): %s", x$estimand, format(signif(x$estimate, 3)))
  ggplot2::ggplot(rows, ggplot2::aes(x = .data$value, y = .data$tau)) +
    ggplot2::geom_point(ggplot2::aes(colour = .data$arm), alpha = 0.5, size = 1) +
    ggplot2::geom_line(data = curve, ggplot2::aes(x = .data$value, y = .data$prediction,
                                                  linetype = line), linewidth = 1) +
    ggplot2::geom_hline(ggplot2::aes(yintercept = x$estimate, linetype = mean_line),
                        colour = "grey30") +
    ggplot2::scale_colour_manual(values = c(treated = "#1f77b4", control = "#999999"),
                                 name = "rows") +
    ggplot2::scale_linetype_manual(values = stats::setNames(c("solid", "dashed"),
                                                            c(line, mean_line)), name = NULL) +
    ggplot2::labs(title = sprintf("T-learner: effect of %s on %s", x$treatment, x$outcome),
                  subtitle = if (ncol(data) > 1) {
                    "curve: the other controls at their median / most common value"
                  },
                  x = covariate, y = "estimated effect tau(x)", colour = "rows") +
    ggplot2::theme_minimal() +
    ggplot2::theme(legend.position = "bottom", legend.box = "vertical")
}

# Estimates with intervals, one row each, coloured by estimand; `truth` (one
# per row, or NULL) as marks.
interval_plot <- function(frame, truth, level, title) {
  frame$label <- factor(frame$label, levels = rev(unique(frame$label)))
  frame$estimand <- ifelse(nzchar(frame$estimand), frame$estimand, "-")
  p <- ggplot2::ggplot(frame, ggplot2::aes(x = .data$estimate, y = .data$label,
                                           colour = .data$estimand)) +
    ggplot2::geom_vline(xintercept = 0, colour = "grey75") +
    ggplot2::geom_errorbar(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high),
                           width = 0.25, orientation = "y", na.rm = TRUE) +
    ggplot2::geom_point(size = 2.5, na.rm = TRUE)
  if (!is.null(truth)) {
    frame$truth <- truth
    p <- p + ggplot2::geom_point(data = frame[is.finite(frame$truth), , drop = FALSE],
                                 ggplot2::aes(x = .data$truth, y = .data$label, shape = "truth"),
                                 colour = "firebrick", size = 3.5, inherit.aes = FALSE) +
      ggplot2::scale_shape_manual(values = c(truth = 124), name = NULL)
  }
  p + ggplot2::labs(title = title,
                    subtitle = sprintf("%g%% intervals, t with G - 1 degrees of freedom",
                                       100 * (if (is.finite(level)) level else 0.95)),
                    x = "estimate", y = NULL, colour = "estimand") +
    ggplot2::theme_minimal() + ggplot2::theme(legend.position = "bottom")
}

pick_covariate <- function(data, covariate) {
  if (is.null(covariate)) {
    numeric_cols <- names(data)[vapply(data, is.numeric, logical(1))]
    covariate <- if (length(numeric_cols)) numeric_cols[1] else names(data)[1]
  }
  if (!is.character(covariate) || length(covariate) != 1 || !covariate %in% names(data)) {
    stop(sprintf("covariate must name one control variable: %s",
                 paste0("'", names(data), "'", collapse = ", ")), call. = FALSE)
  }
  covariate
}

# Predictions along `grid` of one covariate, the others at a typical row.
along <- function(data, covariate, grid, predictor) {
  newdata <- typical_row(data)[rep(1, length(grid)), , drop = FALSE]
  newdata[[covariate]] <- grid
  rownames(newdata) <- NULL
  data.frame(value = grid, prediction = unname(predictor(newdata)))
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
