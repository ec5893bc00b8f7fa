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
#'   Text columns (character or factor) go in as `text(title)`, e.g.
#'   `year ~ text(title) + text(medium) + x1 | artist`: a vocabulary of the
#'   most frequent words (at most `vocab_size`, in `...`; default 2000) is
#'   built from the rows, each text becomes at most `max_tokens` words
#'   (default 32), each word a vector of `embedding_dim` numbers (default
#'   16) learnt with the rest, and each text the mean of its words' vectors;
#'   these join the numeric controls before `model` (the "head": `"mlp"` or
#'   `"linear"`). Words not in the vocabulary (new words at prediction) count
#'   as one unknown word. Inner steps adapt the embeddings too.
#' @param data A data frame.
#' @param model `"mlp"` (a feed-forward network), `"linear"` or
#'   `"neural_ode"`; with `text()` columns, the model after the pooled word
#'   embeddings (`"mlp"` or `"linear"`).
#' @param alpha Weight of the pooled loss, in \[0, 1\].
#' @param inner_steps Number of inner (per-cluster) gradient steps \eqn{k}.
#' @param inner_lr Inner step size \eqn{\eta}.
#' @param first_order Drop second-order terms of the outer gradient.
#' @param loss `"squared"` or `"logistic"` (a 0/1 outcome).
#' @param weights Case (sampling) weights, as in [stats::lm()] and fixest:
#'   the name of a column of `data` (`weights = "w"`), a numeric vector with
#'   one number >= 0 per row of `data` (`weights = df$w`), or a bare column
#'   name (`weights = w`, evaluated in `data` as lm does). Row \eqn{i}'s
#'   loss is multiplied by \eqn{w_i} in \eqn{R_k} and in its cluster's inner
#'   step (a weighted mean), so a whole-number weight \eqn{k} counts the row
#'   \eqn{k} times. Zero weights are allowed; a missing, negative or
#'   infinite weight, or a vector of the wrong length, is an error naming the
#'   row. With `subset`, the weights are subset alike. `NULL` (default): every
#'   row weighs 1. The former values `"obs"` and `"cluster"` still work, with
#'   a warning, for one release: use `equal_clusters` instead (a data column
#'   of that name is the case weights, with a warning).
#' @param equal_clusters `TRUE`: every cluster weighs the same in the loss
#'   (each row's weight divided by its cluster's total; without case weights
#'   \eqn{w_i = 1/n_c}); `FALSE` (default): every row counts by its weight.
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
#' @param subset Optional rows to use, as in [stats::lm()]: an expression
#'   evaluated in `data` giving a logical vector (`NA` counts as `FALSE`) or
#'   row numbers, e.g. `subset = year > 2000`.
#' @param na.action `na.fail` (default: an error naming each column with
#'   missing values), `na.omit` or `na.exclude` (drop those rows, with a
#'   message).
#' @param progress Show a progress bar on stderr with the elapsed and
#'   remaining time: `NULL` (default) when the session is interactive or
#'   stderr is a terminal, never while knitting; `TRUE` or `FALSE` to force
#'   it. With `tune = TRUE` the bar runs over the cross-validation's steps,
#'   then restarts for the refit on all clusters. (`verbose =`, its old
#'   name, still works with a warning.)
#' @param tune Choose among candidates from simple to flexible by
#'   cross-validation across whole clusters (`folds` folds), then refit the
#'   chosen one on all clusters. The candidates: the training mean, the
#'   linear model at `alpha = 1` and at the grid's `alpha`/`inner_lr` (solved
#'   directly on each fold), and the network at each configuration of
#'   `tune_grid` (every configuration x fold trains at once in one compiled
#'   program; its number of outer steps is chosen on the fold-averaged
#'   held-out curve). All are scored on the same held-out clusters; the
#'   choice is the simplest candidate within `margin` standard errors of the
#'   paired per-cluster difference of the best (`margin = 0`, the default:
#'   the lowest held-out loss; `margin = 1`: the one-SE rule; `simple =
#'   FALSE` leaves the mean and linear models out). The table is `fit$cv`
#'   (printed by `summary()`): `diff` and `se_diff` are each row's loss
#'   minus the best's and its paired SE; its last row is the training mean.
#'   With `tune = TRUE`, `max_steps`, `patience` and `eval_every` default to
#'   1000, 50 and 5 per configuration, and from step 100 a configuration
#'   more than 2 paired SEs behind the leading one stops (racing). The
#'   cross-validation runs in float32 (`cv_dtype = "float64"` in `...` to
#'   change it); the refit on all clusters in `dtype` (float64).
#'   `ensemble = S` in `...` refits S networks from different random starts
#'   at the chosen settings (in one compiled program) and predicts with their
#'   mean.
#' @param tune_grid A named list of candidate values for `alpha`, `inner_lr`,
#'   `learning_rate`, `inner_steps`, `hidden` (a list of width vectors),
#'   `activation`, `model`, `first_order`, `penalty`; `NULL` is the default
#'   grid: `alpha` in 1 (ERM), 0.5, 0 (MAML) with `inner_lr` 0.1. Each
#'   candidate is checked as the setting itself is (the message names
#'   `grid['alpha']`); applies only with `tune = TRUE`.
#' @param folds Number of folds of whole clusters for `tune = TRUE`.
#' @param one_se With `tune = TRUE`, choose the fewest steps within one
#'   standard error (across folds) of the best cross-validated loss.
#' @param ... Further backend settings: `embedding_dim`, `vocab_size` and
#'   `max_tokens` with `text()` columns; with `tune = TRUE`, `margin`,
#'   `simple`, `cv_dtype` and `ensemble` (see `tune`); `min_steps` (early stopping keeps no
#'   step before it; default 50, because the held-out loss of a few clusters
#'   is noisy in the first steps), `width`, `steps` for
#'   `model = "neural_ode"`.
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
                loss = c("squared", "logistic"), weights = NULL, equal_clusters = FALSE,
                hidden = c(32L, 32L), activation = "tanh", penalty = 0,
                learning_rate = 0.01, clip_norm = 1, schedule = c("constant", "cosine"),
                max_steps = 2000L, patience = 200L,
                eval_every = 10L, validation_share = 0.2, seed = 0L,
                na.action = stats::na.fail, progress = NULL, subset = NULL,
                tune = FALSE, tune_grid = NULL, folds = 5L, one_se = FALSE, ...) {
  call <- match.call()
  tune <- check_flag(tune, "tune")
  dots <- list(...)
  progress <- progress_setting(progress, dots)
  dots$verbose <- NULL
  # settings of tune alone (see ?rfp, tune): its precision and the ensemble size
  tune_only <- dots[intersect(names(dots), c("cv_dtype", "ensemble", "margin", "simple"))]
  dots[names(tune_only)] <- NULL
  if (length(tune_only) && !tune) {
    stop(sprintf("%s applies only with tune = TRUE", names(tune_only)[1]), call. = FALSE)
  }
  if (!is.null(tune_grid) && !tune) {
    stop("tune_grid applies only with tune = TRUE", call. = FALSE)
  }
  inputs <- captured_inputs()
  data <- inputs$data
  w <- inputs$w
  equal_clusters <- equal_clusters_setting(equal_clusters, !missing(equal_clusters),
                                           w$equal_clusters)
  # the backend's validator checks every setting (R and Python say the same)
  checked <- check_settings(c(list(
    model = if (missing(model)) "mlp" else model, alpha = alpha, inner_steps = inner_steps,
    inner_lr = inner_lr, first_order = first_order,
    loss = if (missing(loss)) "squared" else loss, equal_clusters = equal_clusters,
    hidden = hidden, activation = activation, penalty = penalty,
    learning_rate = learning_rate, clip_norm = clip_norm,
    schedule = if (missing(schedule)) "constant" else schedule, max_steps = max_steps,
    patience = patience, eval_every = eval_every, validation_share = validation_share,
    seed = seed), dots), "fit")
  settings <- checked$r
  design <- rfp_design(formula, data, na.action)
  b <- backend()

  columns <- c(design_columns(design, design$x, design$texts),
               stats::setNames(list(design$y, design$cluster), c(outcome_column, cluster_column)))
  progress <- if (tune) tune_progress_bar(progress) else progress_bar(settings$max_steps, progress)
  on.exit(progress$close(), add = TRUE)
  entry <- b$facade$fit
  py_args <- checked$py
  case_weights <- kept_case_weights(w, design)
  if (!is.null(case_weights)) py_args$weights <- py_column(case_weights)
  settings$weights <- case_weights
  if (tune) {
    # tune's own budget per configuration unless the user set one
    if (missing(max_steps)) py_args$max_steps <- NULL
    if (missing(patience)) py_args$patience <- NULL
    if (missing(eval_every)) py_args$eval_every <- NULL
    entry <- b$facade$tune
    py_args <- c(py_args, check_settings(c(list(folds = folds, one_se = one_se), tune_only),
                                         "tune")$py,
                 list(grid = py_grid(tune_grid)))
  }
  model <- tryCatch(py_call_warnings(entry, c(
    list(py_columns(columns), y = outcome_column, x = as.list(design$columns),
         cluster = cluster_column, text = text_argument(design), na_action = "fail",
         progress = progress$callback),
    py_args)), error = function(e) stop(user_names(conditionMessage(e), design), call. = FALSE))

  if (tune) settings <- chosen_settings(settings, model)
  if (has_text_model(model)) {   # the text model: `model` named its head
    settings$head <- as.character(r_plain(model$config$head))
    settings$model <- "text"
  }
  fitted <- r_numeric(model$predict(py_columns(design_columns(design, design$x, design$texts)),
                                    as_numpy = TRUE))
  fit <- new_rfp_fit(list(
    call = call,
    formula = formula,
    settings = settings,
    design = design[setdiff(names(design), c("x", "y", "cluster"))],
    y = design$y,
    fitted.values = fitted,
    residuals = design$y - fitted,
    weights = case_weights,
    cluster = design$cluster,
    na.action = design$na_action
  ), model, settings, design$x_names)
  fit
}

# A backend message about the columns rfp() sends (rfp_cluster, rfp_y) with
# the user's names for them: the formula's cluster and outcome.
user_names <- function(msg, design) {
  msg <- gsub(sprintf("'%s'", cluster_column), sprintf("'%s'", design$cluster_name), msg,
              fixed = TRUE)
  gsub(sprintf("'%s'", outcome_column), sprintf("'%s'", design$outcome), msg, fixed = TRUE)
}

# An `rfp` object: the caller's fields (call, formula, design, data) and what
# the backend model holds (cluster labels, training history, the
# cross-validation of a tuned fit, the model's bytes), with the model kept
# as the live reference. rfp() and rfp_load() build fits through it.
new_rfp_fit <- function(fields, model, settings, x_names) {
  history <- model$history
  cv <- cv_table(model)
  fit <- structure(c(fields, list(
    clusters = r_labels(model$cluster_labels),
    train_clusters = r_labels(model$train_clusters),
    validation_clusters = r_labels(model$validation_clusters),
    history = data.frame(step = as.numeric(r_plain(history$step)),
                         train = as.numeric(r_plain(history$train)),
                         validation = as.numeric(r_plain(history$validation))),
    best_step = as.integer(r_plain(model$best_step)),
    stopped_early = isTRUE(r_plain(model$stopped_early)),
    n_obs = as.integer(r_plain(model$n_obs)),
    coefficients = linear_coefficients(model, settings, x_names),
    model_bytes = model_bytes(model),
    cv = cv,
    cv_curves = cv_curves(model, cv),
    text = text_summary(model),
    backend = new.env(parent = emptyenv())
  )), class = "rfp")
  fit$backend$model <- model
  fit
}

# Whether the backend model holds a text encoder (Python None otherwise).
has_text_model <- function(model) {
  text <- model$text
  !is.null(text) && !inherits(text, "python.builtin.NoneType")
}

# A text model's inputs: its text columns, vocabulary and embedding (NULL
# without text, or when tune chose a model without it).
text_summary <- function(model) {
  if (!has_text_model(model)) return(NULL)
  list(columns = as.character(unlist(r_plain(model$text$columns))),
       words = as.integer(r_plain(model$text$vocab_size)),
       tokens = as.integer(r_plain(model$text$length)),
       embedding_dim = as.integer(r_plain(model$config$embedding_dim)),
       head = as.character(r_plain(model$config$head)))
}

# After tuning: the settings the refitted model used (the chosen row).
chosen_settings <- function(settings, model) {
  config <- r_plain(model$config)
  for (k in intersect(names(settings), names(config))) {
    v <- config[[k]]
    if (k == "hidden" && !is.null(v)) v <- as.integer(unlist(v))
    if (!is.null(v)) settings[[k]] <- v
  }
  settings
}

# A tuning grid as the backend takes it: a named list of candidate vectors
# (`hidden`: a list of width vectors) -> a dict of candidate lists; NULL, the
# backend's default grid.
py_grid <- function(grid) {
  if (is.null(grid)) return(NULL)
  if (!is.list(grid) || is.null(names(grid)) || any(!nzchar(names(grid)))) {
    stop("tune_grid must be a named list of candidate values, e.g. ",
         "list(alpha = c(1, 0.5, 0), inner_lr = c(0.1, 0.3))", call. = FALSE)
  }
  out <- lapply(names(grid), function(k) {
    v <- grid[[k]]
    if (k == "hidden") {
      if (!is.list(v)) v <- list(v)
      return(lapply(v, function(h) as.list(check_whole(h, "tune_grid$hidden", 1, scalar = FALSE))))
    }
    # each candidate is checked by the backend's validator (crossval.expand_grid);
    # NA goes across as NaN, as in check_settings
    if (is.factor(v)) v <- as.character(v)
    if (!is.atomic(v)) return(v)
    lapply(as.list(v), function(x) if (is.na(x)) NaN else x)
  })
  stats::setNames(out, names(grid))
}

# The cross-validation table of a tuned fit (NULL for an untuned one): the
# tuned settings, mean held-out loss (cv_loss), its SE across folds, the chosen
# step; the last row is the constant predictor (the training mean).
cv_table <- function(model) {
  cv <- model$cv
  if (inherits(cv, "python.builtin.NoneType")) return(NULL)
  out <- r_table(cv$to_arrow())
  rownames(out) <- c(paste("config", seq_len(nrow(out) - 1L)), "mean (no model)")
  out
}

# The design matrix as named backend columns, and the text columns' values
# (`texts`: a named list of character vectors, rows as in x).
design_columns <- function(design, x, texts = NULL) {
  c(stats::setNames(lapply(seq_len(ncol(x)), function(j) x[, j]), design$columns), texts)
}

# The backend's `text =`: the design's text columns, or None.
text_argument <- function(design) {
  if (length(design$text)) as.list(design$text) else NULL
}

# The cross-validated curves of a tuned fit (NULL for an untuned one): one
# row per network configuration and evaluation step, with the configuration's
# label (the settings that vary across the grid) and whether it was chosen.
# The linear candidates and the mean are solved directly (no curve): they are
# rows of the table alone.
cv_curves <- function(model, table = cv_table(model)) {
  cv <- model$cv
  if (is.null(table)) return(NULL)
  keys <- setdiff(names(table), c("model", "cv_loss", "se", "diff", "se_diff", "step",
                                  "chosen"))
  rows <- table[-nrow(table), , drop = FALSE]
  network <- which(!rows$model %in% c("linear", "mean"))
  empty <- data.frame(config = character(0), step = numeric(0), cv_loss = numeric(0),
                      chosen = logical(0))
  if (!length(network)) return(empty)
  labels <- vapply(network, function(g) {
    paste(vapply(keys, function(k) {
      v <- rows[[k]][g]
      sprintf("%s = %s", k, if (is.na(v)) "-" else format(v))
    }, character(1)), collapse = ", ")
  }, character(1))
  do.call(rbind, c(list(empty), lapply(seq_along(network), function(j) {
    g <- network[j]
    s <- as.numeric(unlist(r_plain(reticulate::py_get_item(cv$steps, g - 1L)$tolist())))
    l <- as.numeric(unlist(r_plain(reticulate::py_get_item(cv$curves, g - 1L)$tolist())))
    data.frame(config = rep(labels[j], length(s)), step = s, cv_loss = l,
               chosen = rep(isTRUE(rows$chosen[g]), length(s)))
  })))
}

# Intercept and slopes of a linear model on the original scale of x and y
# (the backend trains on z-scores); NULL for other models.
linear_coefficients <- function(model, settings, x_names) {
  if (settings$model != "linear" || !identical(r_plain(model$config$model), "linear")) {
    return(NULL)
  }
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

# Checks of the R-only arguments (the backend's settings go through
# check_settings): confint's level, progress = and tune =.
check_number <- function(x, name, lower, upper) {
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || x < lower || x > upper) {
    stop(sprintf("%s must be a number in [%s, %s], got %s", name, lower, upper,
                 paste(format(x), collapse = ", ")), call. = FALSE)
  }
  as.numeric(x)
}

check_flag <- function(x, name) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    stop(sprintf("%s must be TRUE or FALSE", name), call. = FALSE)
  }
  x
}

check_whole <- function(x, name, lower, scalar = TRUE) {
  if (!is.numeric(x) || (scalar && length(x) != 1) || length(x) == 0 || anyNA(x) ||
      any(x != round(x)) || any(x < lower) || any(x > .Machine$integer.max)) {
    stop(sprintf("%s must be %s >= %d, got %s", name,
                 if (scalar) "a whole number" else "whole numbers", lower,
                 paste(format(x), collapse = ", ")), call. = FALSE)
  }
  as.integer(x)
}
