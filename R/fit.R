# rfp(): the formula front end of the backend's fit.

#' Fit a model on clustered data by regularized bi-level gradient descent
#'
#' Minimises \eqn{R_k(\theta) = \sum_i w_i [\alpha L_i(\theta) + (1 - \alpha)
#' L_i(\theta_c^k(\theta))] / \sum_i w_i}, where \eqn{\theta_c^k} is
#' \eqn{\theta} after `inner_steps` gradient steps of size `inner_lr` on
#' cluster \eqn{c}'s own loss. `alpha = 1` is ordinary training, `alpha = 0`
#' is MAML. Whole clusters are held out for early stopping. Predictions use
#' \eqn{\theta} alone: the cluster is never an input, so the fit applies to
#' clusters it has not seen.
#'
#' In `y ~ x | g`, **`g` after `|` is the cluster (not fixed effects as in
#' fixest); fixed effects go in `fe =`** (of [rfp_compare()]). A variable
#' with fewer than 10 levels after `|` gives a warning, since it looks like
#' a fixed effect rather than a cluster.
#'
#' @param formula `y ~ controls | cluster`: the outcome, the controls as in
#'   [stats::lm()] (factors become dummies, `.` is every other column,
#'   interactions and `I()` work) and the variable that identifies clusters
#'   (factor, character or integer). **The `|` is the cluster (not fixed
#'   effects as in fixest); fixed effects go in `fe =`** of [rfp_compare()].
#'   Fewer than 10 levels after `|` give a warning. See [rfp_design()].
#' @param data A data frame.
#' @param model `"mlp"` (a feed-forward network), `"linear"` or
#'   `"neural_ode"`.
#' @param alpha Weight of the pooled loss, in \[0, 1\].
#' @param inner_steps Number of inner (per-cluster) gradient steps \eqn{k}.
#' @param inner_lr Inner step size \eqn{\eta}.
#' @param first_order Drop second-order terms of the outer gradient.
#' @param loss `"squared"` or `"logistic"` (a 0/1 outcome).
#' @param weights `"obs"` (each observation counts once) or `"cluster"`
#'   (each cluster counts equally).
#' @param hidden Widths of the hidden layers (`model = "mlp"`).
#' @param activation Activation function (`"tanh"`, `"relu"`, `"gelu"`, ...).
#' @param penalty Weight \eqn{\lambda} of a model's forward-pass penalty.
#' @param learning_rate Adam step size of the outer loop.
#' @param clip_norm Global gradient-norm clipping (`NULL` for none).
#' @param schedule Learning-rate schedule: `"constant"` or `"cosine"` (decay
#'   to zero over `max_steps`).
#' @param max_steps Maximum number of outer steps.
#' @param patience Stop after this many steps without a better held-out
#'   loss (`NULL`: no early stopping and no held-out clusters).
#' @param eval_every Steps between evaluations of the held-out loss.
#' @param validation_share Share of clusters held out for early stopping.
#' @param seed Random seed (initial parameters and held-out clusters).
#' @param na.action `na.fail` (default: an error naming each column with
#'   missing values), `na.omit` or `na.exclude` (drop those rows, with a
#'   message).
#' @param progress Show a progress bar on stderr with the elapsed and
#'   remaining time: `NULL` (default) when the session is interactive or
#'   stderr is a terminal, never while knitting; `TRUE` or `FALSE` to force
#'   it. (`verbose =`, its old name, still works with a warning.)
#' @param ... Further backend settings (`width`, `steps` for
#'   `model = "neural_ode"`).
#' @return An object of class `rfp`; see [summary.rfp()], [predict.rfp()],
#'   [plot.rfp()], [rfp_save()].
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   set.seed(1)
#'   df <- data.frame(g = rep(1:12, each = 10), x1 = rnorm(120), x2 = rnorm(120))
#'   df$y <- abs(df$x1) + 0.5 * df$x2 + rnorm(12)[df$g] + rnorm(120, sd = 0.2)
#'   fit <- rfp(y ~ x1 + x2 | g, data = df, model = "linear", max_steps = 50)
#'   summary(fit)
#'   predict(fit, newdata = df[1:3, ])
#' }
#' }
#' @export
rfp <- function(formula, data, model = c("mlp", "linear", "neural_ode"), alpha = 0.5,
                inner_steps = 1L, inner_lr = 0.1, first_order = FALSE,
                loss = c("squared", "logistic"), weights = c("obs", "cluster"),
                hidden = c(32L, 32L), activation = "tanh", penalty = 0,
                learning_rate = 0.01, clip_norm = 1, schedule = c("constant", "cosine"),
                max_steps = 2000L, patience = 200L,
                eval_every = 10L, validation_share = 0.2, seed = 0L,
                na.action = stats::na.fail, progress = NULL, ...) {
  call <- match.call()
  dots <- list(...)
  progress <- progress_setting(progress, dots)
  dots$verbose <- NULL
  settings <- do.call(fit_settings, c(dots, list(
    model = match.arg(model), alpha = alpha, inner_steps = inner_steps, inner_lr = inner_lr,
    first_order = first_order, loss = match.arg(loss), weights = match.arg(weights),
    hidden = hidden, activation = activation, penalty = penalty,
    learning_rate = learning_rate, clip_norm = clip_norm, schedule = match.arg(schedule),
    max_steps = max_steps,
    patience = patience, eval_every = eval_every, validation_share = validation_share,
    seed = seed)))
  design <- rfp_design(formula, data, na.action)
  b <- backend()

  columns <- c(stats::setNames(lapply(seq_along(design$columns), function(j) design$x[, j]),
                               design$columns),
               stats::setNames(list(design$y, design$cluster), c(outcome_column, cluster_column)))
  progress <- progress_bar(settings$max_steps, progress)
  on.exit(progress$close(), add = TRUE)
  model <- py_call(do.call(b$rfp$fit, c(
    list(py_columns(columns), y = outcome_column, x = as.list(design$columns),
         cluster = cluster_column, na_action = "fail", progress = progress$callback),
    py_settings(settings))))

  fitted <- r_numeric(model$predict(py_columns(design_columns(design, design$x)),
                                    as_numpy = TRUE))
  history <- model$history
  fit <- structure(list(
    call = call,
    formula = formula,
    settings = settings,
    design = design[setdiff(names(design), c("x", "y", "cluster"))],
    y = design$y,
    fitted.values = fitted,
    residuals = design$y - fitted,
    cluster = design$cluster,
    clusters = r_labels(model$cluster_labels),
    train_clusters = r_labels(model$train_clusters),
    validation_clusters = r_labels(model$validation_clusters),
    history = data.frame(step = as.numeric(r_plain(history$step)),
                         train = as.numeric(r_plain(history$train)),
                         validation = as.numeric(r_plain(history$validation))),
    best_step = as.integer(r_plain(model$best_step)),
    stopped_early = isTRUE(r_plain(model$stopped_early)),
    n_obs = as.integer(r_plain(model$n_obs)),
    na.action = design$na_action,
    coefficients = linear_coefficients(model, settings, design$x_names),
    model_bytes = model_bytes(model),
    backend = new.env(parent = emptyenv())
  ), class = "rfp")
  fit$backend$model <- model
  fit
}

# Settings checked in R (so mistakes are caught before Python starts).
fit_settings <- function(..., model, alpha, inner_steps, inner_lr, first_order, loss, weights,
                         hidden, activation, penalty, learning_rate, clip_norm, schedule,
                         max_steps,
                         patience, eval_every, validation_share, seed) {
  extra <- list(...)
  if (length(extra) && (is.null(names(extra)) || any(!nzchar(names(extra))))) {
    stop("further settings in ... must be named (e.g. width = 16)", call. = FALSE)
  }
  list2 <- c(list(
    model = model,
    alpha = check_number(alpha, "alpha", 0, 1),
    inner_steps = check_whole(inner_steps, "inner_steps", 0),
    inner_lr = check_number(inner_lr, "inner_lr", 0, Inf),
    first_order = check_flag(first_order, "first_order"),
    loss = loss, weights = weights,
    hidden = check_whole(hidden, "hidden", 1, scalar = FALSE),
    activation = check_string(activation, "activation"),
    penalty = check_number(penalty, "penalty", 0, Inf),
    learning_rate = check_number(learning_rate, "learning_rate", 0, Inf),
    clip_norm = if (is.null(clip_norm)) NULL else check_number(clip_norm, "clip_norm", 0, Inf),
    schedule = schedule,
    max_steps = check_whole(max_steps, "max_steps", 1),
    patience = if (is.null(patience)) NULL else check_whole(patience, "patience", 0),
    eval_every = check_whole(eval_every, "eval_every", 1),
    validation_share = check_number(validation_share, "validation_share", 0, 1),
    seed = check_whole(seed, "seed", 0)
  ), lapply(extra, function(v) if (is.numeric(v) && all(v == round(v))) as.integer(v) else v))
  if (list2$validation_share >= 1) stop("validation_share must be below 1", call. = FALSE)
  list2
}

# Settings as the backend takes them: hidden as a list of ints, NULL as None.
py_settings <- function(settings) {
  out <- settings
  out$hidden <- as.list(settings$hidden)
  for (name in c("clip_norm", "patience")) {
    if (is.null(settings[[name]])) out[name] <- list(reticulate::py_none())
  }
  out
}

# The design matrix as named backend columns.
design_columns <- function(design, x) {
  stats::setNames(lapply(seq_len(ncol(x)), function(j) x[, j]), design$columns)
}

# Intercept and slopes of a linear model on the original scale of x and y
# (the backend trains on z-scores); NULL for other models.
linear_coefficients <- function(model, settings, x_names) {
  if (settings$model != "linear") return(NULL)
  scaler <- model$scaler
  if (inherits(scaler, "python.builtin.NoneType")) return(NULL)
  w <- r_numeric(reticulate::py_get_item(model$params, "w"))
  b0 <- r_numeric(reticulate::py_get_item(model$params, "b"))
  x_mean <- r_numeric(scaler$x_mean)
  x_scale <- r_numeric(scaler$x_scale)
  y_mean <- as.numeric(r_plain(scaler$y_mean))
  y_scale <- as.numeric(r_plain(scaler$y_scale))
  slopes <- y_scale * w / x_scale
  c(`(Intercept)` = y_mean + y_scale * (b0 - sum(w * x_mean / x_scale)),
    stats::setNames(slopes, x_names))
}

check_number <- function(x, name, lower, upper) {
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || x < lower || x > upper) {
    stop(sprintf("%s must be a number in [%s, %s], got %s", name, lower, upper,
                 paste(format(x), collapse = ", ")), call. = FALSE)
  }
  as.numeric(x)
}

check_whole <- function(x, name, lower, scalar = TRUE) {
  if (!is.numeric(x) || (scalar && length(x) != 1) || length(x) == 0 || anyNA(x) ||
      any(x != round(x)) || any(x < lower)) {
    stop(sprintf("%s must be %s >= %d, got %s", name,
                 if (scalar) "a whole number" else "whole numbers", lower,
                 paste(format(x), collapse = ", ")), call. = FALSE)
  }
  as.integer(x)
}

check_flag <- function(x, name) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    stop(sprintf("%s must be TRUE or FALSE", name), call. = FALSE)
  }
  x
}

check_string <- function(x, name) {
  if (!is.character(x) || length(x) != 1 || is.na(x)) {
    stop(sprintf("%s must be a string", name), call. = FALSE)
  }
  x
}
