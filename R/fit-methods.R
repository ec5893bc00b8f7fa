# S3 methods for fits: printing, summaries, predictions, tidiers.

#' @export
print.rfp <- function(x, ...) {
  s <- x$settings
  model <- if (is.null(x$text)) s$model else sprintf("text + %s", x$text$head)
  cat(sprintf("rfp fit (%s model, %s loss): %s\n", model, s$loss, deparse1(x$formula)))
  cat(sprintf("alpha = %s, inner_steps = %d, inner_lr = %s; %d observations in %d clusters\n",
              format(s$alpha), s$inner_steps, format(s$inner_lr), x$n_obs, length(x$clusters)))
  cat(sprintf("best step %d of %d%s\n", x$best_step, max(x$history$step, 0),
              if (x$stopped_early) " (stopped early)" else ""))
  invisible(x)
}

#' Summarise a fit
#'
#' Settings, clusters and observations (training and held out), the
#' training objective \eqn{R_k} and the held-out loss at the best step (on
#' the backend's standardised scale), and the prediction loss on the
#' original scale (mean squared error, or log loss for `loss = "logistic"`)
#' on training and held-out clusters, one quantity per row (the training
#' objective and the held-out loss are different numbers and are never put
#' in one column); then the coefficients (`model = "linear"`) or the average
#' derivatives of the prediction (other models), as [tidy.rfp()] gives them;
#' and, for a fit with `tune = TRUE`, the cross-validation table `fit$cv`
#' (each configuration's mean held-out loss across folds, its standard error
#' and chosen step; the last row is the training mean).
#'
#' @param object A fit from [rfp()].
#' @param ... Unused.
#' @return An object of class `summary.rfp` (a list; `tidy` holds the
#'   coefficient table, `cv` the cross-validation table of a tuned fit).
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- rfp_simulate("tragic_triad", n_clusters = 10, seed = 1)
#'   summary(rfp(y ~ x | cluster, data = df, model = "linear", max_steps = 50))
#' }
#' }
#' @export
summary.rfp <- function(object, ...) {
  out <- fit_numbers(object)
  # a loaded network has no training rows to take average derivatives over
  if (!loaded_fit(object) || !is.null(object$coefficients)) out$tidy <- tidy(object)
  out
}

# summary()'s numbers but the (costly for networks) average derivatives.
fit_numbers <- function(object) {
  best <- match(object$best_step, object$history$step)
  if (loaded_fit(object)) return(loaded_summary(object, best))
  held <- held_out_rows(object)
  structure(list(
    call = object$call,
    settings = object$settings,
    n_obs = object$n_obs,
    n_dropped = length(object$na.action),
    n_clusters = length(object$clusters),
    n_train_clusters = length(object$train_clusters),
    n_validation_clusters = length(object$validation_clusters),
    n_train_obs = sum(!held),
    n_validation_obs = sum(held),
    best_step = object$best_step,
    steps = max(object$history$step, 0),
    stopped_early = object$stopped_early,
    objective = object$history$train[best],
    validation_loss = object$history$validation[best],
    loss = c(train = prediction_loss(object, !held), validation = prediction_loss(object, held)),
    coefficients = object$coefficients,
    cv = object$cv,
    text = object$text
  ), class = "summary.rfp")
}

#' @export
print.summary.rfp <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  s <- x$settings
  cat("rfp: regularized bi-level gradient descent\n\nCall: ")
  print(x$call)
  cat(sprintf("\nModel: %s, loss: %s, weights: %s\n", s$model, s$loss, weights_label(s)))
  if (!is.null(x$text)) {
    cat(sprintf(paste0("Text: %s; %d words in the vocabulary, up to %d tokens per text; each ",
                       "text the mean of its words' embeddings (%d numbers), then the %s\n"),
                paste(x$text$columns, collapse = ", "), x$text$words, x$text$tokens,
                x$text$embedding_dim, x$text$head))
  }
  if (s$model == "mlp" || identical(x$text$head, "mlp")) {
    cat(sprintf("Hidden layers: %s (%s)\n", paste(s$hidden, collapse = ", "), s$activation))
  }
  cat(sprintf("alpha = %s, inner_steps = %d, inner_lr = %s%s\n", format(s$alpha),
              s$inner_steps, format(s$inner_lr), if (s$first_order) " (first order)" else ""))
  cat(sprintf("learning_rate = %s (%s), max_steps = %s, patience = %s, seed = %s\n",
              format(s$learning_rate), s$schedule %||% "constant", format(s$max_steps),
              if (is.null(s$patience)) "none" else s$patience, format(s$seed)))
  cat(sprintf("\nObservations: %d (%d training, %d held out)%s\n", x$n_obs, x$n_train_obs,
              x$n_validation_obs,
              if (x$n_dropped) sprintf("; %d dropped for missing values", x$n_dropped) else ""))
  cat(sprintf("Clusters:     %d (%d training, %d held out)\n", x$n_clusters,
              x$n_train_clusters, x$n_validation_clusters))
  cat(sprintf("Best step:    %d of %d%s\n\n", x$best_step, x$steps,
              if (x$stopped_early) " (stopped early)" else ""))
  label <- if (s$loss == "squared") "mean squared error" else "log loss"
  # One quantity per row, one set of clusters per column: the training
  # objective R_k and the held-out pooled loss L are different numbers.
  losses <- data.frame(
    `training clusters` = signif_text(c(x$objective, NA, x$loss[["train"]]), digits),
    `held-out clusters` = signif_text(c(NA, x$validation_loss, x$loss[["validation"]]), digits),
    check.names = FALSE, row.names = c("training objective R_k (standardised)",
                                       "pooled loss L (standardised)",
                                       sprintf("%s (original scale)", label)))
  cat("Losses at the best step:\n")
  print(losses, right = TRUE)
  cat(paste0("R_k mixes the pooled loss and the loss after k inner steps (weight alpha) and is ",
             "what training minimises;\nthe held-out pooled loss L decides early stopping.\n"))
  cat(if (is.null(x$coefficients)) {
    "\nAverage derivatives of the prediction (original scale; no standard errors):\n"
  } else {
    "\nCoefficients (original scale; a fit has no standard errors, see rfp_effect()):\n"
  })
  shown <- x$tidy
  if (is.null(shown)) {
    cat("(not available: a loaded fit keeps no training rows)\n")
  } else {
    print(data.frame(Estimate = signif_text(shown$estimate, digits), row.names = shown$term),
          right = TRUE)
  }
  if (!is.null(x$cv)) {
    cat(sprintf(paste0("\nCross-validation across clusters (%d candidates; cv_loss: mean ",
                       "held-out loss, standardised; diff: minus the best row's, se_diff: ",
                       "its paired SE across clusters):\n"), nrow(x$cv)))
    print(x$cv, digits = digits)
  }
  invisible(x)
}

#' Predict from a fit
#'
#' Predictions use \eqn{\theta} alone, so `newdata` needs the controls but
#' not the cluster, and may come from clusters the fit has not seen.
#' Factors keep their training levels (a new level is an error).
#'
#' With `adapted = TRUE` (an extra, never the default), each cluster in
#' `newdata` first takes the fit's `inner_steps` gradient steps on its own
#' labelled rows, and its rows are predicted by the adapted parameters
#' \eqn{\theta_c^k}; `newdata` then needs the outcome and the cluster too,
#' with at least two clusters.
#'
#' @param object A fit from [rfp()].
#' @param newdata A data frame with the controls. Omitted: the training data
#'   (the fitted values, when not `adapted`).
#' @param type `"response"` (E\[y | x\], or P(y = 1 | x) for the logistic
#'   loss) or `"link"` (the logit, for the logistic loss).
#' @param adapted Cluster-adapted predictions (see above).
#' @param ... Unused.
#' @return A numeric vector, one per row of `newdata`; `NA` where a control
#'   (or, when `adapted`, the outcome or cluster) is missing.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- rfp_simulate("tragic_triad", n_clusters = 12, seed = 1)
#'   fit <- rfp(y ~ x | cluster, data = df, hidden = 8L, max_steps = 50)
#'   new <- rfp_simulate("tragic_triad", n_clusters = 5, seed = 2)
#'   head(predict(fit, newdata = new))                  # clusters never seen
#'   head(predict(fit, newdata = new, adapted = TRUE))  # after k steps on each
#' }
#' }
#' @export
predict.rfp <- function(object, newdata = NULL, type = c("response", "link"), adapted = FALSE,
                        ...) {
  type <- match.arg(type)
  if (isTRUE(adapted)) {
    if (type != "response") stop("adapted predictions are on the response scale", call. = FALSE)
    return(adapted_predictions(object, newdata))
  }
  if (is.null(newdata)) {
    if (loaded_fit(object)) no_training_data("pass newdata")
    out <- object$fitted.values
    if (type == "link" && object$settings$loss == "logistic") out <- stats::qlogis(out)
    return(stats::naresid(object$na.action, out))
  }
  x <- rfp_design_matrix(object$design, newdata)
  complete <- attr(x, "complete")
  out <- rep(NA_real_, nrow(x))
  if (any(complete)) {
    out[complete] <- predict_matrix(object, x[complete, , drop = FALSE], type,
                                    lapply(attr(x, "texts"), function(v) v[complete]))
  }
  names(out) <- rownames(x)
  out
}

adapted_predictions <- function(object, newdata) {
  design <- object$design
  if (is.null(newdata)) {
    if (loaded_fit(object)) no_training_data("pass newdata")
    x <- rfp_design_matrix(design, design$covariates)
    y <- object$y
    cluster <- object$cluster
  } else {
    x <- rfp_design_matrix(design, newdata)
    needed <- c(design$outcome, design$cluster_name)
    frame <- tryCatch(stats::model.frame(design$terms, as_data_frame(newdata),
                                         na.action = stats::na.pass, xlev = design$xlevels),
                      error = function(e) NULL)
    if (is.null(frame)) {
      stop(sprintf("adapted predictions need the outcome '%s' and the cluster '%s' in newdata",
                   needed[1], needed[2]), call. = FALSE)
    }
    y <- outcome_vector(stats::model.response(frame), design$outcome)
    cluster <- eval_cluster(str2lang(design$cluster_name), as_data_frame(newdata),
                            environment(object$formula))
  }
  ok <- attr(x, "complete") & is.finite(y) & !is.na(cluster)
  out <- rep(NA_real_, nrow(x))
  if (any(ok)) {
    columns <- c(design_columns(design, x[ok, , drop = FALSE],
                                lapply(attr(x, "texts"), function(v) v[ok])),
                 stats::setNames(list(y[ok], cluster[ok]), c(outcome_column, cluster_column)))
    model <- backend_model(object)
    out[ok] <- py_call(r_numeric(model$predict_adapted(
      py_columns(columns), y = outcome_column, cluster = cluster_column, as_numpy = TRUE)))
  }
  if (is.null(newdata)) return(stats::naresid(object$na.action, out))
  names(out) <- rownames(x)
  out
}

# Predictions for rows of the design matrix (training column order) and
# the text columns' values of the same rows (`texts`).
predict_matrix <- function(object, x, type = "response", texts = NULL) {
  model <- backend_model(object)
  py_call(r_numeric(model$predict(py_columns(design_columns(object$design, x, texts)),
                                  type = type, as_numpy = TRUE)))
}

#' @export
fitted.rfp <- function(object, ...) {
  if (loaded_fit(object)) no_training_data("predict on new data instead")
  stats::naresid(object$na.action, object$fitted.values)
}

#' @export
residuals.rfp <- function(object, ...) {
  if (loaded_fit(object)) no_training_data("predict on new data instead")
  stats::naresid(object$na.action, object$residuals)
}

#' Tidy a fit
#'
#' For `model = "linear"`, the intercept and slopes on the original scale of
#' the data (`type = "coefficient"`). For other models, the average
#' derivative of the prediction (the logit for the logistic loss) with
#' respect to each design column over the training rows, by central
#' differences (`type = "average derivative"`); for a linear model the two
#' agree. A fit has no sampling variance, so the inferential columns are
#' `NA` (use [rfp_effect()] for an effect with a standard error).
#'
#' @param x A fit from [rfp()].
#' @param ... Unused.
#' @return A data frame with broom's columns `term`, `estimate`,
#'   `std.error`, `statistic`, `p.value`, `conf.low`, `conf.high` (all `NA`
#'   but `term` and `estimate`) and `type`.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- rfp_simulate("tragic_triad", n_clusters = 10, seed = 1)
#'   fit <- rfp(y ~ x | cluster, data = df, model = "linear", max_steps = 50)
#'   tidy(fit)
#'   glance(fit)
#' }
#' }
#' @method tidy rfp
#' @export
tidy.rfp <- function(x, ...) {
  if (!is.null(x$coefficients)) {
    estimate <- x$coefficients
    type <- "coefficient"
  } else {
    estimate <- average_derivatives(x)
    type <- "average derivative"
  }
  na <- rep(NA_real_, length(estimate))
  data.frame(term = names(estimate), estimate = unname(estimate), std.error = na,
             statistic = na, p.value = na, conf.low = na, conf.high = na, type = type,
             stringsAsFactors = FALSE)
}

#' Glance at a fit
#'
#' One row: observations, clusters, settings, the best step and the losses
#' of [summary.rfp()].
#'
#' @param x A fit from [rfp()].
#' @param ... Unused.
#' @return A one-row data frame.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- rfp_simulate("tragic_triad", n_clusters = 12, seed = 1)
#'   glance(rfp(y ~ x | cluster, data = df, model = "linear", max_steps = 50))
#' }
#' }
#' @method glance rfp
#' @export
glance.rfp <- function(x, ...) {
  s <- fit_numbers(x)
  data.frame(
    model = s$settings$model, loss = s$settings$loss,
    alpha = s$settings$alpha, inner_steps = s$settings$inner_steps,
    inner_lr = s$settings$inner_lr,
    nobs = s$n_obs, n_dropped = s$n_dropped, n_clusters = s$n_clusters,
    n_train_clusters = s$n_train_clusters, n_validation_clusters = s$n_validation_clusters,
    best_step = s$best_step, steps = s$steps, stopped_early = s$stopped_early,
    objective = s$objective, validation_loss = s$validation_loss,
    train_prediction_loss = unname(s$loss["train"]),
    validation_prediction_loss = unname(s$loss["validation"]),
    stringsAsFactors = FALSE)
}

# summary() of a fit from rfp_load(): the numbers rfp_save() stored.
loaded_summary <- function(object, best) {
  s <- object$saved_summary
  structure(list(
    call = object$call, settings = object$settings, n_obs = object$n_obs,
    n_dropped = object$n_dropped, n_clusters = length(object$clusters),
    n_train_clusters = length(object$train_clusters),
    n_validation_clusters = length(object$validation_clusters),
    n_train_obs = as.integer(s$n_train_obs), n_validation_obs = as.integer(s$n_validation_obs),
    best_step = object$best_step, steps = max(object$history$step, 0),
    stopped_early = object$stopped_early, objective = object$history$train[best],
    validation_loss = object$history$validation[best],
    loss = c(train = s$loss_train, validation = s$loss_validation),
    coefficients = object$coefficients), class = "summary.rfp")
}

# Rows of the (kept) data that belong to held-out clusters.
held_out_rows <- function(fit) {
  as.character(fit$cluster) %in% as.character(fit$validation_clusters)
}

prediction_loss <- function(fit, rows) {
  if (!any(rows)) return(NA_real_)
  y <- fit$y[rows]
  p <- fit$fitted.values[rows]
  if (fit$settings$loss == "squared") return(mean((y - p)^2))
  p <- pmin(pmax(p, 1e-15), 1 - 1e-15)
  -mean(y * log(p) + (1 - y) * log(1 - p))
}

average_derivatives <- function(fit) {
  if (loaded_fit(fit)) no_training_data("average derivatives are taken over the training rows")
  x <- rfp_design_matrix(fit$design, fit$design$covariates)
  keep <- attr(x, "complete")
  texts <- lapply(attr(x, "texts"), function(v) rep(v[keep], 2))   # for rbind(up, down)
  x <- x[keep, , drop = FALSE]
  type <- if (fit$settings$loss == "logistic") "link" else "response"
  slopes <- vapply(seq_len(ncol(x)), function(j) {
    h <- 1e-4 * max(stats::sd(x[, j]), 1e-8)
    up <- x
    down <- x
    up[, j] <- up[, j] + h
    down[, j] <- down[, j] - h
    both <- predict_matrix(fit, rbind(up, down), type, texts)
    n <- nrow(x)
    mean(both[seq_len(n)] - both[n + seq_len(n)]) / (2 * h)
  }, numeric(1))
  stats::setNames(slopes, colnames(x))
}

`%||%` <- function(a, b) if (is.null(a)) b else a
