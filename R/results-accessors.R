# Accessors shared by every result class (rfp, rfp_effect, rfp_compare,
# rfp_balance): coef, vcov, confint, nobs, and the coefficient table that
# summary() prints and tidy() returns (broom's columns).
#
# vcov() and confint() read whatever variance a result holds: a stored
# `vcov` matrix if there is one, else its `std.error`; confint() at the
# stored level returns the stored interval (which need not be symmetric,
# e.g. a bootstrap's) and otherwise estimate +- t(df) * standard error.
# `se_type` / `vcov_type`, when a result has one, names the variance.

# ---- rfp (a fit) ------------------------------------------------------------

#' Coefficients, variance and intervals of rfp results
#'
#' The usual accessors of [stats::coef()], [stats::vcov()],
#' [stats::confint()] and [stats::nobs()] on every rfp result:
#'
#' * an [rfp()] fit has coefficients only for `model = "linear"` (the
#'   intercept and slopes on the original scale); for a neural network
#'   `coef()` is an error (use [tidy()], which gives average derivatives).
#'   A fit is a predictor without a sampling variance, so `vcov()` and
#'   `confint()` are errors that say where to find one ([rfp_effect()]).
#' * an [rfp_effect()] or [rfp_balance()] has one coefficient, the effect,
#'   named by the treatment, with its cluster-robust variance (a T-learner
#'   has no standard error: `vcov()` and `confint()` are errors).
#' * an [rfp_compare()] table has one coefficient per row, named
#'   `method:estimand`; `vcov()` is diagonal with `NA` off the diagonal
#'   (the covariances between estimators are not estimated).
#'
#' Intervals use a t distribution with the result's degrees of freedom
#' (G - 1 for G clusters); at the result's own level they are the stored
#' interval.
#'
#' @param object A result of [rfp()], [rfp_effect()], [rfp_compare()] or
#'   [rfp_balance()].
#' @param parm Names or positions of coefficients (default: all).
#' @param level Confidence level.
#' @param ... Unused.
#' @return `coef()`: a named numeric vector. `vcov()`: a matrix.
#'   `confint()`: a matrix with one row per coefficient and columns named by
#'   the percentiles, as in [stats::confint()]. `nobs()`: the number of
#'   observations used.
#' @name rfp-accessors
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   eff <- rfp_effect(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                     folds = 2, model = "linear", max_steps = 30)
#'   coef(eff)
#'   vcov(eff)
#'   confint(eff, level = 0.9)
#'   nobs(eff)
#' }
#' }
NULL

#' @rdname rfp-accessors
#' @export
coef.rfp <- function(object, ...) {
  if (is.null(object$coefficients)) {
    stop(sprintf(paste0("coef(): a fit with model = \"%s\" has no coefficients (only ",
                        "model = \"linear\" does); tidy(fit) gives the average derivative of ",
                        "the prediction with respect to each control"), object$settings$model),
         call. = FALSE)
  }
  object$coefficients
}

#' @rdname rfp-accessors
#' @export
vcov.rfp <- function(object, ...) no_variance_error("vcov")

#' @rdname rfp-accessors
#' @export
confint.rfp <- function(object, parm, level = 0.95, ...) no_variance_error("confint")

no_variance_error <- function(what) {
  stop(sprintf(paste0("%s(): an rfp() fit is a predictor trained by early-stopped, regularised ",
                      "gradient descent and has no sampling variance; for a treatment effect ",
                      "with a cluster-robust standard error use rfp_effect() or rfp_compare()"),
               what), call. = FALSE)
}

#' @rdname rfp-accessors
#' @export
nobs.rfp <- function(object, ...) object$n_obs

# ---- rfp_effect and rfp_balance (one effect) --------------------------------

#' @rdname rfp-accessors
#' @export
coef.rfp_effect <- function(object, ...) stats::setNames(object$estimate, object$treatment)

#' @rdname rfp-accessors
#' @export
vcov.rfp_effect <- function(object, ...) {
  if (object$method == "t_learner") {
    stop(paste0("vcov(): the T-learner's effect is a plug-in mean of tau(x) without a ",
                "standard error; use method = \"aipw\" or \"dml\" for one"), call. = FALSE)
  }
  stored_vcov(object, object$treatment)
}

#' @rdname rfp-accessors
#' @export
confint.rfp_effect <- function(object, parm, level = 0.95, ...) {
  if (object$method == "t_learner") {
    stop(paste0("confint(): the T-learner's effect is a plug-in mean of tau(x) without a ",
                "standard error; use method = \"aipw\" or \"dml\" for an interval"),
         call. = FALSE)
  }
  one_interval(object, parm, level)
}

#' @rdname rfp-accessors
#' @export
nobs.rfp_effect <- function(object, ...) object$n

#' @rdname rfp-accessors
#' @export
coef.rfp_balance <- function(object, ...) stats::setNames(object$estimate, object$treatment)

#' @rdname rfp-accessors
#' @export
vcov.rfp_balance <- function(object, ...) stored_vcov(object, object$treatment)

#' @rdname rfp-accessors
#' @export
confint.rfp_balance <- function(object, parm, level = 0.95, ...) {
  one_interval(object, parm, level)
}

#' @rdname rfp-accessors
#' @export
nobs.rfp_balance <- function(object, ...) object$n

# A 1 x 1 variance: the result's `vcov` if it holds one, else std.error^2.
stored_vcov <- function(object, term) {
  v <- object$vcov
  if (is.null(v)) v <- object$std.error^2
  matrix(as.numeric(v)[1], 1, 1, dimnames = list(term, term))
}

one_interval <- function(object, parm, level) {
  se <- sqrt(diag(vcov(object)))
  df <- object$df %||% (object$n_clusters - 1L)
  intervals(coef(object), se, df, level, object$conf.low, object$conf.high,
            object$level %||% 0.95, parm)
}

# ---- rfp_compare (one row per method and estimand) ---------------------------

compare_terms <- function(x) {
  ifelse(nzchar(x$estimand) & !is.na(x$estimand), paste0(x$method, ":", x$estimand), x$method)
}

#' @rdname rfp-accessors
#' @export
coef.rfp_compare <- function(object, ...) stats::setNames(object$estimate, compare_terms(object))

#' @rdname rfp-accessors
#' @export
vcov.rfp_compare <- function(object, ...) {
  terms <- compare_terms(object)
  v <- matrix(NA_real_, length(terms), length(terms), dimnames = list(terms, terms))
  diag(v) <- object$std.error^2
  v
}

#' @rdname rfp-accessors
#' @export
confint.rfp_compare <- function(object, parm, level = 0.95, ...) {
  intervals(coef(object), object$std.error, compare_df(object), level, object$conf.low,
            object$conf.high, attr(object, "level") %||% 0.95, parm)
}

# Degrees of freedom per row: a `df` column if the table has one, else G - 1.
compare_df <- function(x) if (!is.null(x$df)) x$df else x$clusters - 1L

#' @rdname rfp-accessors
#' @export
nobs.rfp_compare <- function(object, ...) if (nrow(object)) max(object$n) else 0L

# ---- shared --------------------------------------------------------------

# confint() matrix: the stored bounds at the stored level, else t intervals.
intervals <- function(estimate, se, df, level, low, high, stored_level, parm) {
  level <- check_number(level, "level", 0, 1)
  terms <- names(estimate)
  if (!missing(parm)) {
    keep <- if (is.numeric(parm)) parm else match(parm, terms)
    if (anyNA(keep) || any(keep < 1 | keep > length(terms))) {
      stop(sprintf("parm must name coefficients among %s",
                   paste0("'", terms, "'", collapse = ", ")), call. = FALSE)
    }
  } else {
    keep <- seq_along(terms)
  }
  if (isTRUE(all.equal(level, stored_level)) && !is.null(low)) {
    bounds <- cbind(low, high)
  } else {
    half <- stats::qt(1 - (1 - level) / 2, df) * se
    bounds <- cbind(estimate - half, estimate + half)
  }
  percent <- paste(format(100 * c((1 - level) / 2, 1 - (1 - level) / 2), trim = TRUE,
                          scientific = FALSE, digits = 3), "%")
  matrix(bounds[keep, , drop = FALSE], ncol = 2, dimnames = list(terms[keep], percent))
}

# broom's columns from estimates, standard errors and t degrees of freedom.
coef_frame <- function(term, estimate, std.error, df, conf.low, conf.high) {
  statistic <- estimate / std.error
  data.frame(term = term, estimate = estimate, std.error = std.error, statistic = statistic,
             p.value = 2 * stats::pt(-abs(statistic), df = df),
             conf.low = conf.low, conf.high = conf.high, df = df, stringsAsFactors = FALSE)
}

# Print a coefficient table in the style of estimatr / fixest: Estimate,
# Std. Error, t value, Pr(>|t|), the interval and the degrees of freedom.
print_coef_table <- function(frame, level = 0.95, digits = max(3L, getOption("digits") - 3L),
                             row_names = frame$term) {
  percent <- format(100 * level)
  table <- data.frame(
    Estimate = signif_text(frame$estimate, digits),
    `Std. Error` = signif_text(frame$std.error, digits),
    `t value` = signif_text(frame$statistic, digits),
    `Pr(>|t|)` = ifelse(is.finite(frame$p.value), format.pval(frame$p.value, digits = digits),
                        "-"),
    ` ` = stars(frame$p.value),
    `CI Lower` = signif_text(frame$conf.low, digits),
    `CI Upper` = signif_text(frame$conf.high, digits),
    DF = ifelse(is.finite(frame$df), format(frame$df), "-"),
    check.names = FALSE, stringsAsFactors = FALSE)
  rownames(table) <- make.unique(as.character(row_names))
  print(table, right = TRUE)
  df <- frame$df[is.finite(frame$df)]
  df_note <- if (length(df) && any(abs(df - round(df)) > 1e-8)) {
    "t on the DF column's degrees of freedom (Satterthwaite's, for CR2)"
  } else {
    "t on DF = G - 1 degrees of freedom (G clusters)"
  }
  cat(sprintf("---\n%s%% intervals; %s\n", percent, df_note))
  if (any(nzchar(table[[" "]]))) {
    cat("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n")
  }
  invisible(frame)
}

signif_text <- function(v, digits) ifelse(is.finite(v), format(signif(v, digits)), "-")

stars <- function(p) {
  out <- as.character(cut(p, c(-Inf, 0.001, 0.01, 0.05, 0.1, Inf),
                          labels = c("***", "**", "*", ".", ""), right = FALSE))
  out[is.na(out)] <- ""
  out
}

# The name of the variance a result holds (shown by summary()).
variance_label <- function(object, default = "CR1") {
  type <- object$se_type %||% object$vcov_type %||% attr(object, "se_type") %||%
    attr(object, "vcov_type")
  if (is.null(type) || !length(type)) default else as.character(type)[1]
}
