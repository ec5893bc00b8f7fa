# rfp_effect(): treatment effects by the method, the formula front end of
# the backend's rfp.effect (DML, AIPW, T-learner with cross-fitting by
# whole clusters).

#' Estimate a treatment effect on clustered data
#'
#' The nuisance functions (E\[Y | X\], E\[D | X\], or the outcome in each
#' arm) are fitted by regularized bi-level gradient descent ([rfp()]), with
#' cross-fitting whose folds are whole clusters: every row is predicted by
#' fits that saw none of its cluster. With `model = "linear"` a nuisance
#' under the squared loss (and, at `alpha = 1`, the logistic one) has a
#' direct solution, which is used instead of gradient descent: the same
#' objective, solved exactly, with no step budget or seed.
#'
#' * `method = "dml"`: the partially linear model \eqn{Y = \tau D + g(X) +
#'   \varepsilon} by double ML, \eqn{\hat\tau = \sum V U / \sum V^2} with
#'   \eqn{U = Y - \hat g(X)}, \eqn{V = D - \hat m(X)}, and a CR1 standard
#'   error by cluster (estimand `"PLM"`, a variance-weighted average effect;
#'   `estimand` is ignored). D may be continuous.
#' * `method = "aipw"`: augmented inverse probability weighting for a binary
#'   D (`estimand` `"ATE"` or `"ATT"`), cluster-robust influence-function
#'   standard error.
#' * `method = "t_learner"`: \eqn{\tau(x) = \mu_1(x) - \mu_0(x)}, one fit per
#'   arm on all its rows; [predict.rfp_effect()] gives \eqn{\hat\tau(x)} on
#'   new data. The reported estimate is the plug-in mean of \eqn{\hat\tau(x)}
#'   over all rows (`"ATE"`) or the treated rows (`"ATT"`), without a
#'   standard error.
#'
#' Intervals use a t distribution with G - 1 degrees of freedom (G clusters).
#' `diagnostics$variance_share` is the share of the treatment's variance the
#' nuisance model explains; near 1, the variation left in D is
#' functional-form-induced and a warning (class
#' `rfp_functional_form_warning`) says so.
#'
#' @param formula `y ~ controls | cluster`, as in [rfp()] (see
#'   [rfp_design()]).
#' @param data A data frame.
#' @param treatment Name of the treatment column (a string): 0/1 or logical
#'   (any numbers for `"dml"`).
#' @param method `"dml"`, `"aipw"` or `"t_learner"`.
#' @param estimand `"ATE"` or `"ATT"` (`"aipw"`, `"t_learner"`).
#' @param folds Number of cross-fitting folds (whole clusters; at least 2).
#' @param seed Seed of the folds and the fits.
#' @param repeats Repeated cross-fitting (`"dml"`, `"aipw"`): the estimate is
#'   computed on this many independent fold splits and the median reported,
#'   with the spread across splits added to its variance (Chernozhukov et al.
#'   2018, Section 3.4). `NULL` (the default) uses 5 with fewer than 100
#'   clusters and 1 (plain cross-fitting) otherwise: in rfp's simulation
#'   study with 40 clusters five splits moved the coverage of DML's 95%
#'   interval from 0.88-0.93 to 0.945-0.96, at five times the fitting time.
#' @param nuisance How the nuisance models are chosen (`"dml"`, `"aipw"`):
#'   `"select"` (default) picks, per nuisance, the simplest of a constant, a
#'   linear/logistic regression and the method's model whose cross-validated
#'   loss across cluster folds is within one standard error of the best (so
#'   a randomized treatment gets a constant propensity); `"method"`,
#'   `"linear"` or `"constant"` force one. The choice is in
#'   `diagnostics$nuisance_models`.
#' @param trim `"aipw"`: `NULL` (default), `"crump"` (Crump et al. 2009 rule)
#'   or a number in (0, 0.5): rows whose propensity lies outside
#'   \[trim, 1 - trim\] are left out, and the estimand becomes
#'   `"ATE (trimmed)"` / `"ATT (trimmed)"`.
#' @param weights Case (sampling) weights, as in [rfp()]: a column name, a
#'   numeric vector with one number >= 0 per row of `data`, or a bare column
#'   name. Every method takes them: the nuisance fits minimise the weighted
#'   loss; `"dml"` solves the weighted score, \eqn{\hat\tau = \sum w V U /
#'   \sum w V^2}, with cluster scores \eqn{\sum_{i \in g} w_i V_i e_i};
#'   `"aipw"` takes the weighted mean of its score (ATE: \eqn{\sum w \phi /
#'   \sum w}; ATT: \eqn{\sum w s / \sum w D}) and its cluster-level
#'   propensity uses weighted cluster means. A whole-number weight \eqn{k}
#'   equals the row repeated \eqn{k} times. `equal_clusters = TRUE` in `...`
#'   makes each cluster weigh the same in the nuisance fits (the former
#'   `weights = "cluster"`, which still works with a warning).
#' @param design `NULL`, `"cluster"` (treatment is assigned to whole clusters:
#'   an error if it varies within one) or `"individual"`.
#' @param subset Optional rows to use, as in [stats::lm()]: an expression
#'   evaluated in `data` giving a logical vector (`NA` counts as `FALSE`) or
#'   row numbers, e.g. `subset = year > 2000`.
#' @param na.action `na.fail` (default), `na.omit` or `na.exclude`, for the
#'   outcome, controls, cluster and treatment.
#' @param progress Show one progress bar over the fits, on stderr, with the
#'   elapsed and remaining time: `NULL` (default) when the session is
#'   interactive or stderr is a terminal, never while knitting; `TRUE` or
#'   `FALSE` to force it. (`verbose =`, its old name, still works with a
#'   warning.)
#' @param vcov,se_type The variance (`se_type` is estimatr's name for the
#'   same setting): only `"CR1"` (cluster-robust, t on G - 1) for these
#'   estimators. `"CR2"` and `"wild"` exist for the fixed-effects row of
#'   [rfp_compare()]; here they are an error that says why: their leverage
#'   correction is derived for OLS with a fixed design, while DML's and AIPW's
#'   residuals come from cross-fitted nonlinear nuisance fits.
#' @param ... Settings of the nuisance fits, as in [rfp()]: `model`,
#'   `hidden`, `alpha`, `inner_steps`, `inner_lr`, `max_steps`, `patience`,
#'   `learning_rate`, ... (the loss is chosen per nuisance); and `level`
#'   (confidence level, default 0.95), `clip` (`"aipw"`: propensity clipping,
#'   default 0.01), `propensity` (`"aipw"`: `"auto"`, `"cluster"` or
#'   `"individual"`, the level at which the propensity is fitted; `"auto"`
#'   fits it on cluster means when treatment is constant within clusters) and
#'   `propensity_penalty`, `warn_share` (`"dml"`: the variance share above
#'   which to warn, default 0.9).
#' @return An object of class `rfp_effect`: a list with `estimate`,
#'   `std.error`, `conf.low`, `conf.high`, `level`, `df`, `se_type`, `n`, `n_clusters`,
#'   `method`, `estimand`, `diagnostics` (a list: `variance_share`, `ess`,
#'   `converged`, ...) and `nuisance` (a data frame of the cross-fitted
#'   predictions, residuals and folds per row; for `"t_learner"`, `tau`).
#' @seealso [rfp_compare()] for every estimator side by side.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   eff <- rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                     method = "aipw", estimand = "ATT", folds = 2,
#'                     model = "linear", max_steps = 30)
#'   eff
#'   tidy(eff)
#' }
#' }
#' @export
rfp_effect <- function(formula, data, treatment, method = c("dml", "aipw", "t_learner"),
                       estimand = c("ATE", "ATT"), folds = 5L, seed = 0L, repeats = NULL,
                       design = NULL, na.action = stats::na.fail, progress = NULL,
                       nuisance = c("select", "method", "linear", "constant"), trim = NULL,
                       vcov = c("CR1", "CR2", "wild"), se_type = NULL, subset = NULL,
                       weights = NULL, ...) {
  call <- match.call()
  inputs <- captured_inputs()
  data <- inputs$data
  w <- inputs$w
  method <- match.arg(method)
  v <- vcov_setting(vcov, se_type)
  if (method == "t_learner" && !identical(v$value, "CR1")) {
    stop("vcov = ", deparse1(v$value), " does not apply to the T-learner, which reports no ",
         "standard error", call. = FALSE)
  }
  if (method == "dml" && !missing(estimand)) {
    warning("method = \"dml\" estimates the partially linear model's tau (estimand \"PLM\"); ",
            "estimand is ignored", call. = FALSE)
  }
  estimand <- if (missing(estimand)) "ATE" else estimand
  dots <- list(...)
  progress <- progress_setting(progress, dots)
  dots$verbose <- NULL
  dots <- dots_with_equal_clusters(dots, w)
  # the backend's validator checks every setting (R and Python say the same)
  given <- c(list(folds = folds, seed = seed, repeats = repeats, design = design), dots)
  if (method == "aipw") given$estimand <- estimand
  if (method == "t_learner") {
    given$folds <- given$repeats <- NULL
  } else {
    given$vcov <- v$value
    given$nuisance <- if (missing(nuisance)) "select" else nuisance
  }
  if (!is.null(trim)) {
    if (method != "aipw") {
      stop("trim = applies to method = \"aipw\" only (it trims rows by their propensity)",
           call. = FALSE)
    }
    given$trim <- trim
  }
  checked <- check_settings(given, method, rename = v$rename)
  settings <- checked$r
  folds <- settings$folds %||% folds
  seed <- settings$seed
  repeats <- settings$repeats
  design <- settings$design
  what <- switch(method, dml = "DML", aipw = "AIPW", t_learner = "the T-learner")
  ed <- effect_design(formula, data, treatment, na.action, binary = method != "dml",
                      what = what)
  columns <- effect_columns(ed)
  b <- backend()
  if (method != "t_learner") repeats <- repeats %||% default_repeats(ed$cluster)

  n_fits <- switch(method, dml = 2 * folds,
                   aipw = ((estimand == "ATE") + 1 +
                             individual_propensity(ed, settings$propensity)) * folds,
                   t_learner = 2)
  if (method != "t_learner") n_fits <- n_fits * repeats
  progress <- fits_progress(n_fits, progress)
  on.exit(progress$close(), add = TRUE)
  args <- list(columns$table, y = columns$y, d = columns$d, x = columns$x,
               cluster = columns$cluster, method = method, na_action = "fail")
  if (method != "t_learner") checked$py$repeats <- repeats   # the count the progress bar used
  case_weights <- kept_case_weights(w, ed)
  if (!is.null(case_weights)) checked$py$weights <- py_column(case_weights)
  result <- py_call_warnings(b$facade$effect, c(args, checked$py, progress$settings))

  out <- if (method == "t_learner") {
    t_learner_effect(result, ed, estimand, case_weights)
  } else {
    backend_effect(result)
  }
  out$call <- call
  out$formula <- formula
  out$method <- method
  out$treatment <- ed$treatment_name
  out$outcome <- ed$outcome
  out$cluster_name <- ed$cluster_name
  out$n_dropped <- ed$n_dropped
  out$settings <- c(list(folds = folds, seed = seed, repeats = repeats, design = design),
                    dots)
  out$weights <- case_weights
  class(out) <- "rfp_effect"
  out
}

# Fold splits when repeats is NULL: rfp.effects.default_repeats (5 below 100
# clusters, else 1).
default_repeats <- function(cluster) {
  if (length(unique(cluster)) < 100) 5L else 1L
}

# Does AIPW fit the propensity by the method on individual rows (one more
# nuisance per fold)? With propensity "auto", only when treatment varies
# within some cluster.
individual_propensity <- function(ed, propensity = NULL) {
  propensity <- propensity %||% "auto"
  if (!identical(propensity, "auto")) return(identical(propensity, "individual"))
  any(tapply(ed$treatment, as.character(ed$cluster), function(d) length(unique(d)) > 1))
}

# An rfp.effects.Effect -> the R list (numbers and per-row nuisances).
backend_effect <- function(e) {
  diagnostics <- r_scalars(e$diagnostics)
  for (name in c("folds", "n_clipped", "repeats", "n_trimmed")) {
    if (!is.null(diagnostics[[name]])) diagnostics[[name]] <- as.integer(diagnostics[[name]])
  }
  # the chosen nuisance models (named character) and overlap warnings (character)
  py_diag <- e$diagnostics
  if (reticulate::py_to_r(py_diag$`__contains__`("nuisance_models"))) {
    diagnostics$nuisance_models <- unlist(r_plain(py_diag$get("nuisance_models")))
  }
  if (reticulate::py_to_r(py_diag$`__contains__`("overlap_warnings"))) {
    diagnostics$overlap_warnings <- as.character(unlist(r_plain(py_diag$get("overlap_warnings"))))
  }
  nuisance <- unlist(r_plain(backend()$facade$keys(e$nuisance)))
  rows <- lapply(stats::setNames(nuisance, nuisance), function(k) {
    r_numeric(reticulate::py_get_item(e$nuisance, k))
  })
  if (!is.null(rows$fold)) rows$fold <- as.integer(rows$fold) + 1L
  list(estimand = r_plain(e$estimand),
       estimate = as.numeric(r_plain(e$estimate)),
       std.error = as.numeric(r_plain(e$std_error)),
       conf.low = as.numeric(r_plain(e$ci_low)),
       conf.high = as.numeric(r_plain(e$ci_high)),
       level = as.numeric(r_plain(e$level)),
       df = as.integer(r_plain(e$df)),
       se_type = r_plain(e$se_type),
       n = as.integer(r_plain(e$n)),
       n_clusters = as.integer(r_plain(e$n_clusters)),
       diagnostics = diagnostics,
       nuisance = as.data.frame(rows))
}

# An rfp.effects.TLearner -> the R list: tau(x) on the rows and its plug-in
# (case-weighted) mean, both from facade.t_learner_estimate; the two arms'
# models (kept as bytes, like a fit).
t_learner_effect <- function(learner, ed, estimand, weights = NULL) {
  arms <- list(mu0 = learner$mu0, mu1 = learner$mu1)
  out <- list(estimand = estimand, design = ed[setdiff(names(ed), c("x", "y", "cluster"))],
              model_bytes = lapply(arms, model_bytes),
              backend = new.env(parent = emptyenv()))
  out$backend$models <- arms
  columns <- py_columns(design_columns(out$design, ed$x))
  plug_in <- py_call(backend()$facade$t_learner_estimate(
    arms$mu0, arms$mu1, columns, py_column(ed$treatment), estimand,
    weights = if (is.null(weights)) NULL else py_column(weights)))
  tau <- r_numeric(reticulate::py_get_item(plug_in, "tau"))
  n_clusters <- length(unique(ed$cluster))
  c(out, list(
    estimate = as.numeric(r_plain(reticulate::py_get_item(plug_in, "estimate"))),
    std.error = NA_real_, conf.low = NA_real_, conf.high = NA_real_,
    level = NA_real_, df = n_clusters - 1L, n = length(tau), n_clusters = n_clusters,
    diagnostics = list(converged = isTRUE(r_plain(learner$converged)),
                       best_step_mu0 = as.integer(r_plain(arms$mu0$best_step)),
                       best_step_mu1 = as.integer(r_plain(arms$mu1$best_step))),
    nuisance = data.frame(tau = tau, treatment = ed$treatment)))
}

# tau(x) = mu1(x) - mu0(x) for rows of the design matrix (facade.t_learner_tau).
t_learner_predict <- function(object, x) {
  models <- object$backend$models
  if (is.null(models) || reticulate::py_is_null_xptr(models$mu0)) {
    b <- backend()
    models <- lapply(object$model_bytes, function(bytes) {
      path <- tempfile(fileext = ".npz")
      on.exit(unlink(path), add = TRUE)
      writeBin(bytes, path)
      py_call(b$facade$load_model(path))
    })
    object$backend$models <- models
  }
  columns <- py_columns(design_columns(object$design, x))
  py_call(r_numeric(backend()$facade$t_learner_tau(models$mu0, models$mu1, columns)))
}

#' Predict individual effects from a T-learner
#'
#' \eqn{\hat\tau(x) = \hat\mu_1(x) - \hat\mu_0(x)} for each row of
#' `newdata` (the controls are needed; the treatment, outcome and cluster
#' are not). Only for `method = "t_learner"`.
#'
#' @param object An [rfp_effect()] with `method = "t_learner"`.
#' @param newdata A data frame with the controls; omitted, the estimation
#'   rows.
#' @param ... Unused.
#' @return A numeric vector, `NA` where a control is missing.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   learner <- rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                         method = "t_learner", model = "linear", max_steps = 30)
#'   predict(learner, newdata = data.frame(x1 = c(-1, 0, 1), x2 = 0, z = 0))
#' }
#' }
#' @export
predict.rfp_effect <- function(object, newdata = NULL, ...) {
  if (object$method != "t_learner") {
    stop(sprintf(paste0("predict() gives tau(x) for method = \"t_learner\"; this effect is ",
                        "method = \"%s\", a single number (%s)"), object$method,
                 format(object$estimate)), call. = FALSE)
  }
  if (is.null(newdata)) return(object$nuisance$tau)
  x <- rfp_design_matrix(object$design, newdata)
  complete <- attr(x, "complete")
  out <- rep(NA_real_, nrow(x))
  if (any(complete)) out[complete] <- t_learner_predict(object, x[complete, , drop = FALSE])
  names(out) <- rownames(x)
  out
}

#' @export
print.rfp_effect <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("rfp effect of %s on %s (%s, %s): %s\n", x$treatment, x$outcome,
              effect_label(x$method), x$estimand, deparse1(x$formula)))
  if (is.na(x$std.error)) {
    cat(sprintf("estimate %s (plug-in mean of tau(x); no standard error)\n",
                format(signif(x$estimate, digits))))
  } else {
    cat(sprintf("estimate %s, std. error %s, %g%% CI [%s, %s]\n",
                format(signif(x$estimate, digits)), format(signif(x$std.error, digits)),
                100 * x$level, format(signif(x$conf.low, digits)),
                format(signif(x$conf.high, digits))))
  }
  cat(sprintf("%d observations in %d clusters%s\n", x$n, x$n_clusters,
              if (x$n_dropped) sprintf(" (%d dropped for missing values)", x$n_dropped) else ""))
  invisible(x)
}

#' Summarise an effect
#'
#' A coefficient table in the style of estimatr and fixest (estimate,
#' standard error, t statistic, p-value, interval, degrees of freedom: t
#' with G - 1 for G clusters), the variance used (`CR1` by cluster unless
#' the result says otherwise), and the diagnostics: the share of treatment
#' variance the nuisance model explains, the effective sample size, whether
#' every nuisance fit converged, and method-specific numbers (clipped
#' propensities for AIPW; per-fold values are listed).
#'
#' @param object An [rfp_effect()].
#' @param ... Unused.
#' @return An object of class `summary.rfp_effect` (a list; `coefficients`
#'   is the [tidy()] table).
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   summary(rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                      folds = 2, model = "linear", max_steps = 30))
#' }
#' }
#' @export
summary.rfp_effect <- function(object, ...) {
  structure(list(call = object$call, method = object$method, estimand = object$estimand,
                 treatment = object$treatment, outcome = object$outcome,
                 coefficients = tidy(object), level = object$level,
                 se_type = if (object$method == "t_learner") "none" else variance_label(object),
                 cluster_name = object$cluster_name,
                 diagnostics = object$diagnostics, n = object$n,
                 n_clusters = object$n_clusters, n_dropped = object$n_dropped,
                 settings = object$settings),
            class = "summary.rfp_effect")
}

#' @export
print.summary.rfp_effect <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("rfp effect: %s, estimand %s\n\nCall: ", effect_label(x$method), x$estimand))
  print(x$call)
  cat(sprintf("\n%d observations in %d clusters%s; %s, seed %d\n",
              x$n, x$n_clusters,
              if (isTRUE(x$n_dropped > 0)) sprintf(" (%d dropped)", x$n_dropped) else "",
              if (x$method == "t_learner") "one fit per arm on all its rows"
              else sprintf("cross-fitting in %d folds of whole clusters", x$settings$folds),
              x$settings$seed))
  cat(if (x$method == "t_learner") {
    "Standard error: none (plug-in mean of tau(x))\n\n"
  } else {
    sprintf("Standard error: %s, clustered by %s\n\n", x$se_type, x$cluster_name %||% "cluster")
  })
  print_coef_table(x$coefficients, level = if (is.finite(x$level)) x$level else 0.95,
                   digits = digits,
                   row_names = sprintf("%s (%s)", x$coefficients$term, x$estimand))
  cat("\nDiagnostics:\n")
  d <- x$diagnostics
  warned <- d$overlap_warnings
  d$overlap_warnings <- NULL
  shown <- vapply(d, function(v) {
    v <- format(if (is.numeric(v)) signif(v, digits) else v, trim = TRUE)
    if (!is.null(names(v))) v <- paste0(names(v), "=", v)      # e.g. nuisance_models
    paste(v, collapse = ", ")
  }, "")
  cat(paste0("  ", format(names(shown)), "  ", shown, collapse = "\n"), "\n")
  if (!is.null(d$variance_share) && is.finite(d$variance_share) && d$variance_share > 0.9) {
    cat("  (variance_share above 0.9: the treatment variation left after the controls is",
        "small and may be functional-form-induced)\n")
  }
  if (length(warned)) cat(paste0("  Overlap: ", warned, collapse = "\n"), "\n")
  invisible(x)
}

#' Tidy an effect
#'
#' @param x An [rfp_effect()].
#' @param conf.int,conf.level As in broom: the interval columns are always
#'   there; `conf.level` other than the effect's level recomputes them (t
#'   with G - 1 degrees of freedom).
#' @param ... Unused.
#' @return A one-row data frame with broom's columns `term` (the
#'   treatment), `estimate`, `std.error`, `statistic`, `p.value`,
#'   `conf.low`, `conf.high`, and `df`, `estimand`, `method`.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   eff <- rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                     folds = 2, model = "linear", max_steps = 30)
#'   tidy(eff)
#'   tidy(eff, conf.level = 0.9)
#'   glance(eff)
#' }
#' }
#' @method tidy rfp_effect
#' @export
tidy.rfp_effect <- function(x, conf.int = TRUE, conf.level = x$level, ...) {
  bounds <- c(x$conf.low, x$conf.high)
  if (is.finite(x$std.error) && is.finite(conf.level) && !isTRUE(all.equal(conf.level, x$level))) {
    bounds <- confint(x, level = conf.level)[1, ]
  }
  out <- coef_frame(x$treatment, x$estimate, sqrt(stored_variance(x)), x$df, bounds[1],
                    bounds[2])
  out$estimand <- x$estimand
  out$method <- x$method
  out
}

# The variance a one-effect result holds (NA when it has none).
stored_variance <- function(object) {
  v <- object$vcov %||% object$std.error^2
  as.numeric(v)[1]
}

#' Glance at an effect
#'
#' @param x An [rfp_effect()].
#' @param ... Unused.
#' @return A one-row data frame: `method`, `estimand`, `nobs`, `n_clusters`,
#'   `df`, `folds` and the numeric and logical diagnostics.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   glance(rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                     folds = 2, model = "linear", max_steps = 30))
#' }
#' }
#' @method glance rfp_effect
#' @export
glance.rfp_effect <- function(x, ...) {
  d <- x$diagnostics[vapply(x$diagnostics, function(v) length(v) == 1 &&
                              (is.numeric(v) || is.logical(v)), logical(1))]
  d$folds <- NULL
  data.frame(c(list(method = x$method, estimand = x$estimand, nobs = x$n,
                    n_clusters = x$n_clusters, df = x$df,
                    se_type = if (x$method == "t_learner") NA_character_ else variance_label(x),
                    folds = if (x$method == "t_learner") NA_integer_ else x$settings$folds),
               d), stringsAsFactors = FALSE)
}

effect_label <- function(method) {
  labels <- c(dml = "double ML, partially linear", aipw = "AIPW", t_learner = "T-learner",
              fixed_effects = "fixed effects", entropy_balancing = "entropy balancing",
              cluster_balancing = "cluster balancing", kernel = "kernel smoother",
              dml_maml = "double ML, MAML (alpha = 0)", dml_erm = "double ML, ERM (alpha = 1)")
  out <- unname(labels[method])
  ifelse(is.na(out), method, out)
}
