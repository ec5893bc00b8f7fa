# The formula layer: `y ~ controls | cluster` -> outcome, design matrix and
# cluster, in pure R (no Python).  The design keeps what prediction needs to
# rebuild the same columns on new data: terms, factor levels and contrasts.

#' Parse an rfp formula into an outcome, a design matrix and a cluster
#'
#' The outcome left of `~`, then the controls as in [stats::lm()] (factors
#' become dummies, `.` is every other column, interactions and `I()` work),
#' then `|` and the cluster variable. **The variable after `|` is the
#' cluster (not fixed effects as in fixest); fixed effects go in `fe =`**
#' (of [rfp_compare()]). Clusters are the units the method adapts to and
#' the units of cluster-robust inference; a variable with fewer than 10
#' levels after `|` gives a warning (class `rfp_few_clusters_warning`): it
#' looks like a fixed effect, and cluster-robust standard errors on so few
#' clusters are unreliable (`options(rfp.few_clusters = n)` moves the
#' threshold; 0 silences it). The design matrix has no intercept column (the
#' backend's model has its own).
#'
#' @param formula A formula `y ~ x1 + x2 | cluster`.
#' @param data A data frame.
#' @param na.action What to do with rows that have missing values: `na.fail`
#'   (default; an error naming each column and its count), `na.omit` or
#'   `na.exclude` (drop the rows, with a message; `na.exclude` pads fitted
#'   values and residuals with `NA`). The strings `"fail"`, `"omit"` and
#'   `"exclude"` work too.
#' Text columns go in as `text(title)` (several: `text(title) + text(medium)`
#' or `text(title, medium)`): a character or factor column whose words
#' [rfp()] embeds (see its `formula`). They are not in the design matrix;
#' the design lists them in `text` and holds their values in `texts`.
#'
#' @return An object of class `rfp_design`: `y`, `x` (the design matrix,
#'   model.matrix column names), `columns` (the syntactic names sent to the
#'   backend, one per column of `x`), `cluster`, `outcome` and `cluster_name`,
#'   `terms`, `xlevels`, `contrasts`, `na_action` (`NULL` or the dropped
#'   rows), `rows` (the numbers of the rows of `data` kept), `covariates`
#'   (the raw control variables of the kept rows).
#' @examples
#' df <- data.frame(y = rnorm(24), x = 1:24, f = c("a", "b"), g = rep(1:12, 2))
#' d <- rfp_design(y ~ x + f | g, df)
#' head(d$x)
#' @export
rfp_design <- function(formula, data, na.action = stats::na.fail) {
  parts <- split_formula(formula)
  data <- as_data_frame(data)
  na_mode <- na_mode(na.action)

  cluster_vars <- all.vars(parts$cluster)
  text <- text_terms(parts$controls)
  parts$controls <- text$controls
  text <- text$columns
  texts <- text_values(data, text, cluster_vars, all.vars(parts$controls[[2]]))
  tt <- control_terms(parts$controls, data, c(cluster_vars, text))
  clash <- intersect(all.vars(stats::delete.response(tt)), cluster_vars)
  if (length(clash)) {
    stop(sprintf(paste0("the cluster variable '%s' is also a control; rfp never uses the ",
                        "cluster as an input (it predicts for clusters it has not seen): ",
                        "remove it from the controls"), clash[1]), call. = FALSE)
  }
  # the same message as the backend (python/rfp/data.py, check_roles)
  outcome_vars <- all.vars(parts$controls[[2]])
  twice <- intersect(all.vars(stats::delete.response(tt)), outcome_vars)
  if (length(twice)) {
    stop(sprintf("the outcome '%s' is also a control: remove it from the controls", twice[1]),
         call. = FALSE)
  }

  mf <- stats::model.frame(tt, data = data, na.action = stats::na.pass)
  cluster <- eval_cluster(parts$cluster, data, environment(formula))
  if (length(cluster) != nrow(mf)) {
    stop(sprintf("the cluster '%s' has %d values but the data has %d rows",
                 deparse1(parts$cluster), length(cluster), nrow(mf)), call. = FALSE)
  }

  bad <- missing_by_column(c(as.list(mf), texts), cluster, deparse1(parts$cluster))
  na_action <- NULL
  rows <- seq_len(nrow(data))
  if (length(bad$counts)) {
    if (na_mode == "fail") stop(missing_message(bad), call. = FALSE)
    drop <- which(bad$rows)
    if (length(drop) == nrow(data)) {
      stop("every row has a missing value: nothing is left to fit", call. = FALSE)
    }
    message(sprintf("rfp: dropped %d row(s) with missing values (%s)", length(drop),
                    paste(sprintf("%s: %d", names(bad$counts), bad$counts), collapse = ", ")))
    na_action <- structure(drop, names = rownames(data)[drop], class = na_mode)
    rows <- rows[-drop]
    data <- data[-drop, , drop = FALSE]
    cluster <- cluster[-drop]
    texts <- lapply(texts, function(v) v[-drop])
  }
  warn_few_clusters(cluster, deparse1(parts$cluster))
  mf <- stats::model.frame(tt, data = data, na.action = stats::na.pass,
                           drop.unused.levels = TRUE)

  tt <- attr(mf, "terms")  # carries predvars (poly(), scale() ...) for new data
  x <- stats::model.matrix(tt, mf)
  contrasts <- attr(x, "contrasts")
  x <- drop_intercept(x)
  if (ncol(x) == 0 && !length(text)) {
    stop("no controls: put at least one variable right of ~ (before the |)", call. = FALSE)
  }
  x_vars <- intersect(all.vars(stats::delete.response(tt)), names(data))

  structure(list(
    y = outcome_vector(stats::model.response(mf), deparse1(parts$controls[[2]])),
    x = x,
    x_names = colnames(x),
    columns = syntactic_columns(colnames(x)),
    cluster = if (is.factor(cluster)) droplevels(cluster) else cluster,
    outcome = deparse1(parts$controls[[2]]),
    cluster_name = deparse1(parts$cluster),
    formula = formula,
    terms = tt,
    xlevels = stats::.getXlevels(tt, mf),
    contrasts = contrasts,
    na_action = na_action,
    rows = rows,
    covariates = data[union(x_vars, text)],
    text = text,
    texts = texts
  ), class = "rfp_design")
}

#' Rebuild the design matrix of a fit on new data
#'
#' Uses the training terms, factor levels and contrasts, so a factor keeps
#' its training dummies. Rows with a missing control give `NA` rows.
#'
#' @param design An `rfp_design` (or a fitted `rfp` model).
#' @param newdata A data frame with the control variables (the outcome and
#'   the cluster are not needed).
#' @return A numeric matrix with the training column names; its attribute
#'   `complete` marks the rows without missing values.
#' @examples
#' df <- data.frame(y = rnorm(24), x = 1:24, f = c("a", "b"), g = rep(1:12, 2))
#' d <- rfp_design(y ~ x + f | g, df)
#' rfp_design_matrix(d, data.frame(x = c(2.5, NA), f = c("b", "a")))
#' @export
rfp_design_matrix <- function(design, newdata) {
  if (inherits(design, "rfp")) design <- design$design
  newdata <- as_data_frame(newdata)
  tt <- stats::delete.response(design$terms)
  lacking <- setdiff(names(design$covariates) %||% design$covariate_names, names(newdata))
  if (length(lacking)) {
    stop(sprintf("newdata lacks the column(s) %s used by the controls",
                 paste0("'", lacking, "'", collapse = ", ")), call. = FALSE)
  }
  mf <- tryCatch(
    stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = design$xlevels),
    error = function(e) stop("newdata: ", conditionMessage(e), call. = FALSE))
  complete <- stats::complete.cases(mf) & !nonfinite_rows(mf)
  x <- matrix(NA_real_, nrow(mf), length(design$x_names),
              dimnames = list(rownames(newdata), design$x_names))
  if (any(complete)) {
    full <- drop_intercept(stats::model.matrix(tt, mf[complete, , drop = FALSE],
                                               contrasts.arg = design$contrasts))
    if (!identical(colnames(full), design$x_names)) {
      stop("newdata gives design columns (", paste(colnames(full), collapse = ", "),
           ") that differ from the fit's (", paste(design$x_names, collapse = ", "), ")",
           call. = FALSE)
    }
    x[complete, ] <- full
  }
  if (length(design$text)) {
    texts <- text_values(newdata, design$text, character(), character())
    complete <- complete & Reduce(`&`, lapply(texts, function(v) !is.na(v)))
    attr(x, "texts") <- texts
  }
  attr(x, "complete") <- complete
  x
}

#' @export
print.rfp_design <- function(x, ...) {
  cat(sprintf("rfp design: %s on %d column(s), %d observations in %d clusters (%s)\n",
              x$outcome, ncol(x$x), length(x$y), length(unique(x$cluster)), x$cluster_name))
  cat("columns:", paste(colnames(x$x), collapse = ", "), "\n")
  if (!is.null(x$na_action)) cat(sprintf("dropped %d row(s) with missing values\n",
                                          length(x$na_action)))
  invisible(x)
}

# ---- helpers --------------------------------------------------------------

# Fewer than `getOption("rfp.few_clusters", 10)` levels right of `|` look
# like fixed effects (fixest's meaning of `|`) rather than clusters.
warn_few_clusters <- function(cluster, name) {
  few_clusters <- getOption("rfp.few_clusters", 10L)
  levels <- length(unique(cluster[!is.na(cluster)]))
  if (levels >= few_clusters) return(invisible(FALSE))
  warning(warningCondition(sprintf(paste0(
    "the cluster '%s' (right of |) has only %d levels. In rfp, | names the cluster (not fixed ",
    "effects as in fixest): the units the fit adapts to and the units of cluster-robust ",
    "inference, which is unreliable with fewer than %d clusters. If '%s' is a fixed effect ",
    "(strata), put it in fe = ~ %s and the cluster after |; if it is the cluster, prefer CR2 or ",
    "a wild cluster bootstrap to CR1 standard errors"), name, levels, few_clusters, name, name),
    class = "rfp_few_clusters_warning"))
  invisible(TRUE)
}

# The `text(...)` terms of the controls: list(controls = the formula without
# them (`~ 1` when nothing else is left), columns = the text columns named).
text_terms <- function(controls) {
  columns <- character()
  split_sum <- function(e) {
    if (is.call(e) && identical(e[[1]], as.name("+")) && length(e) == 3) {
      return(c(split_sum(e[[2]]), split_sum(e[[3]])))
    }
    list(e)
  }
  kept <- Filter(function(e) {
    if (!(is.call(e) && identical(e[[1]], as.name("text")))) return(TRUE)
    args <- as.list(e)[-1]
    if (!length(args) || !all(vapply(args, is.name, logical(1))) || !is.null(names(args))) {
      stop(sprintf("text() takes column names, e.g. text(title) or text(title, medium); got %s",
                   deparse1(e)), call. = FALSE)
    }
    columns <<- c(columns, vapply(args, as.character, character(1)))
    FALSE
  }, split_sum(controls[[3]]))
  if (any(vapply(kept, function(e) "text" %in% all.names(e, functions = TRUE) &&
                   is.call(e), logical(1)))) {
    stop("text() must be a term of its own (text(title) + x1), not inside another term",
         call. = FALSE)
  }
  if (!length(columns)) return(list(controls = controls, columns = columns))
  rhs <- if (length(kept)) Reduce(function(a, b) call("+", a, b), kept) else 1
  out <- controls
  out[[3]] <- rhs
  list(controls = out, columns = unique(columns))
}

# The text columns' values as character vectors (a factor by its labels).
text_values <- function(data, columns, cluster_vars, outcome_vars) {
  out <- lapply(columns, function(name) {
    if (name %in% cluster_vars) {
      stop(sprintf("the text column '%s' is also the cluster: name it once", name), call. = FALSE)
    }
    if (name %in% outcome_vars) {
      stop(sprintf("the text column '%s' is also the outcome: name it once", name), call. = FALSE)
    }
    if (!name %in% names(data)) {
      stop(sprintf("text column '%s' not found in the data", name), call. = FALSE)
    }
    v <- data[[name]]
    if (is.factor(v)) v <- as.character(v)
    if (!is.character(v)) {
      stop(sprintf(paste0("text column '%s' is %s, not text: put it outside text() if it is a ",
                          "number, or convert it with as.character()"), name, class(v)[1]),
           call. = FALSE)
    }
    v
  })
  stats::setNames(out, columns)
}

# Split `y ~ controls | cluster` into the controls formula and the cluster call.
split_formula <- function(formula) {
  if (!inherits(formula, "formula")) {
    stop("formula must be a formula such as y ~ x1 + x2 | cluster", call. = FALSE)
  }
  f <- Formula::Formula(formula)
  n <- length(f)
  text <- deparse1(formula)
  if (n[1] == 0) {
    stop(sprintf("the formula %s has no outcome: put it left of ~, e.g. y %s", text, text),
         call. = FALSE)
  }
  if (n[1] > 1) {
    stop(sprintf("the formula %s has more than one outcome part; rfp fits one outcome", text),
         call. = FALSE)
  }
  if (n[2] == 1) {
    stop(sprintf(paste0("the formula %s has no cluster: add `| cluster` at the end, ",
                        "e.g. %s | school (the variable that identifies clusters)"), text, text),
         call. = FALSE)
  }
  if (n[2] > 2) {
    stop(sprintf(paste0("the formula %s has %d parts after ~; rfp takes two: ",
                        "controls | cluster (combine cluster variables with interaction(a, b))"),
                 text, n[2]), call. = FALSE)
  }
  controls <- stats::formula(f, lhs = 1, rhs = 1)
  cluster_part <- stats::terms(stats::formula(f, lhs = 0, rhs = 2))
  labels <- attr(cluster_part, "term.labels")
  if (length(labels) != 1 || "." %in% all.vars(cluster_part)) {
    stop(sprintf(paste0("the cluster part (after |) must be one variable, got '%s'; ",
                        "combine several with interaction(a, b)"),
                 deparse1(stats::formula(f, lhs = 0, rhs = 2)[[2]])), call. = FALSE)
  }
  environment(controls) <- environment(formula)
  list(controls = controls, cluster = str2lang(labels))
}

# Terms of the controls, with `.` expanded to the columns other than the
# outcome and the cluster, and always an intercept (so a factor is coded
# against its first level; the intercept column itself is dropped later).
control_terms <- function(controls, data, cluster_vars) {
  others <- data[setdiff(names(data), cluster_vars)]
  tt <- stats::terms(controls, data = others)
  if (attr(tt, "intercept") == 0) {
    tt <- stats::terms(stats::update(stats::formula(tt), . ~ . + 1), data = others)
  }
  tt
}

eval_cluster <- function(expr, data, env) {
  vars <- all.vars(expr)
  missing_vars <- vars[!vars %in% names(data) & !vapply(vars, exists, logical(1), envir = env)]
  if (length(missing_vars)) {
    stop(sprintf("cluster variable '%s' not found in the data", missing_vars[1]), call. = FALSE)
  }
  value <- eval(expr, data, env)
  if (!is.atomic(value) || is.null(value)) {
    stop(sprintf("the cluster '%s' must be a vector (factor, character or integer)",
                 deparse1(expr)), call. = FALSE)
  }
  value
}

# Which rows are missing (NA, NaN or infinite) in each model-frame column and
# the cluster; returns counts by column and the union of bad rows.
missing_by_column <- function(mf, cluster, cluster_name) {
  cols <- c(as.list(mf), stats::setNames(list(cluster), cluster_name))
  rows <- lapply(cols, function(v) {
    b <- is.na(v) | nonfinite(v)
    if (is.matrix(b)) rowSums(b) > 0 else b
  })
  counts <- vapply(rows, sum, numeric(1))
  first <- vapply(rows, function(b) if (any(b)) which(b)[1] else NA_integer_, integer(1))
  keep <- counts > 0
  list(counts = counts[keep], first = first[keep],
       rows = Reduce(`|`, rows, logical(length(cluster))))
}

missing_message <- function(bad) {
  what <- sprintf("column '%s' has %d missing value(s) (NA, NaN or Inf), first at row %d",
                  names(bad$counts), bad$counts, bad$first)
  paste0(paste(what, collapse = "; "),
         "; fix them or pass na.action = na.omit to drop those rows")
}

nonfinite <- function(v) if (is.numeric(v)) is.infinite(v) else logical(length(v))

nonfinite_rows <- function(mf) {
  Reduce(`|`, lapply(mf, function(v) {
    b <- nonfinite(v)
    if (is.matrix(b)) rowSums(b) > 0 else b
  }), logical(nrow(mf)))
}

na_mode <- function(na.action) {
  if (is.character(na.action)) {
    mode <- match.arg(na.action, c("fail", "omit", "exclude"))
  } else if (identical(na.action, stats::na.fail)) {
    mode <- "fail"
  } else if (identical(na.action, stats::na.omit)) {
    mode <- "omit"
  } else if (identical(na.action, stats::na.exclude)) {
    mode <- "exclude"
  } else {
    stop("na.action must be na.fail, na.omit or na.exclude", call. = FALSE)
  }
  mode
}

outcome_vector <- function(y, name) {
  if (is.null(y)) stop("the formula has no outcome left of ~", call. = FALSE)
  if (is.logical(y)) return(as.numeric(y))
  if (is.factor(y)) {
    if (nlevels(y) != 2) {
      stop(sprintf("the outcome '%s' is a factor with %d levels; rfp takes a numeric outcome ",
                   name, nlevels(y)), "or a two-level factor (coded 0/1)", call. = FALSE)
    }
    return(as.numeric(y) - 1)
  }
  if (!is.numeric(y) || is.matrix(y)) {
    stop(sprintf("the outcome '%s' must be a numeric vector", name), call. = FALSE)
  }
  as.numeric(y)
}

drop_intercept <- function(x) {
  keep <- colnames(x) != "(Intercept)"
  out <- x[, keep, drop = FALSE]
  attr(out, "assign") <- NULL
  attr(out, "contrasts") <- NULL
  out
}

# Syntactic, unique column names for the backend, distinct from the names
# used for the outcome and the cluster.
syntactic_columns <- function(names) {
  make.names(c(outcome_column, cluster_column, names), unique = TRUE)[-(1:2)]
}
outcome_column <- "rfp_outcome"
cluster_column <- "rfp_cluster"

as_data_frame <- function(data) {
  if (missing(data) || is.null(data)) stop("data is required: a data frame", call. = FALSE)
  if (!is.data.frame(data)) {
    data <- tryCatch(as.data.frame(data),
                     error = function(e) stop("data must be a data frame", call. = FALSE))
  }
  data
}
