# The data of an effect estimator: `y ~ controls | cluster` (the formula
# layer), a treatment column and optional strata, checked in R and sent to
# the backend as one table of columns.

# Outcome, design matrix and cluster (rfp_design), the treatment and the
# strata of the rows kept. Rows with a missing treatment or stratum follow
# `na.action` like every other column.
effect_design <- function(formula, data, treatment, na.action = stats::na.fail, fe = NULL,
                          binary = FALSE, what = "this estimator") {
  data <- as_data_frame(data)
  mode <- na_mode(na.action)
  treatment <- treatment_name(treatment, data)
  strata_vars <- strata_names(fe, data)

  extra <- c(stats::setNames(list(data[[treatment]]), treatment), as.list(data[strata_vars]))
  bad <- lapply(extra, function(v) is.na(v) | nonfinite(v))
  counts <- vapply(bad, sum, numeric(1))
  dropped <- 0L
  rows <- seq_len(nrow(data))
  if (any(counts > 0)) {
    what_missing <- sprintf("column '%s' has %d missing value(s) (NA, NaN or Inf), first at row %d",
                            names(counts)[counts > 0], counts[counts > 0],
                            vapply(bad[counts > 0], function(b) which(b)[1], integer(1)))
    if (mode == "fail") {
      stop(paste0(paste(what_missing, collapse = "; "),
                  "; fix them or pass na.action = na.omit to drop those rows"), call. = FALSE)
    }
    drop <- which(Reduce(`|`, bad))
    if (length(drop) == nrow(data)) {
      stop("every row has a missing value: nothing is left to estimate from", call. = FALSE)
    }
    message(sprintf("rfp: dropped %d row(s) with a missing treatment or stratum (%s)",
                    length(drop), paste(sprintf("%s: %d", names(counts)[counts > 0],
                                                counts[counts > 0]), collapse = ", ")))
    data <- data[-drop, , drop = FALSE]
    rows <- rows[-drop]
    dropped <- length(drop)
  }

  design <- rfp_design(formula, data, na.action)
  if (length(design$text)) {
    stop("text() controls work in rfp() (and in Python's rfp.effect(..., text=) for DML); ",
         "the R effect and comparison front ends take numeric controls", call. = FALSE)
  }
  controls <- all.vars(stats::delete.response(design$terms))
  roles <- c(outcome = design$outcome, cluster = design$cluster_name)
  if (treatment %in% controls || treatment %in% all.vars(str2lang(design$outcome)) ||
      treatment %in% all.vars(str2lang(design$cluster_name))) {
    stop(sprintf(paste0("the treatment '%s' also appears in the formula %s; name it only in ",
                        "treatment = (the formula holds the outcome, the controls and the ",
                        "cluster)"), treatment, deparse1(formula)), call. = FALSE)
  }
  clash <- intersect(strata_vars, c(controls, treatment))
  if (length(clash)) {
    stop(sprintf("the stratum variable '%s' is also a control or the treatment", clash[1]),
         call. = FALSE)
  }
  kept <- if (is.null(design$na_action)) seq_len(nrow(data)) else -as.integer(design$na_action)
  d <- treatment_values(data[[treatment]][kept], treatment)
  check_treatment(d, treatment, binary, what)

  strata <- NULL
  if (length(strata_vars)) {
    values <- lapply(data[strata_vars], function(v) as.character(v)[kept])
    strata <- if (length(values) == 1) values[[1]] else do.call(paste, c(values, sep = ":"))
  }
  design$treatment <- d
  design$treatment_name <- treatment
  design$strata <- strata
  design$strata_name <- if (length(strata_vars)) paste(strata_vars, collapse = ":") else NULL
  design$n_dropped <- dropped + length(design$na_action)
  design$rows <- rows[design$rows]   # rows of the data given
  design
}

# The columns for the backend and the names of their roles. Names are the
# user's where they are syntactic and distinct (so the backend's messages
# name them), otherwise rfp_<role>.
effect_columns <- function(design) {
  wanted <- c(y = design$outcome, d = design$treatment_name, cluster = design$cluster_name,
              strata = design$strata_name %||% "")
  fallback <- c(y = outcome_column, d = "rfp_treatment", cluster = cluster_column,
                strata = "rfp_strata")
  taken <- design$columns
  roles <- character()
  for (role in names(wanted)) {
    name <- wanted[[role]]
    if (!nzchar(name) || !identical(make.names(name), name) || name %in% c(taken, roles)) {
      name <- fallback[[role]]
    }
    roles[[role]] <- name
  }
  columns <- c(design_columns(design, design$x),
               stats::setNames(list(design$y, design$treatment, design$cluster),
                               roles[c("y", "d", "cluster")]))
  if (!is.null(design$strata)) columns[[roles[["strata"]]]] <- design$strata
  list(table = py_columns(columns), y = roles[["y"]], d = roles[["d"]],
       cluster = roles[["cluster"]], strata = if (is.null(design$strata)) NULL else roles[["strata"]],
       x = as.list(design$columns))
}

treatment_name <- function(treatment, data) {
  usage <- "treatment must name one column of data, as a string (e.g. treatment = \"d\")"
  if (missing(treatment)) stop(usage, call. = FALSE)
  treatment <- tryCatch(treatment, error = function(e) {
    stop(usage, " (", conditionMessage(e), ")", call. = FALSE)
  })
  if (!is.character(treatment) || length(treatment) != 1 || is.na(treatment)) {
    stop(usage, call. = FALSE)
  }
  if (!treatment %in% names(data)) {
    stop(sprintf("treatment column '%s' not found in data; its columns are %s", treatment,
                 paste0("'", names(data), "'", collapse = ", ")), call. = FALSE)
  }
  treatment
}

strata_names <- function(fe, data) {
  if (is.null(fe)) return(character())
  if (is.character(fe)) {
    vars <- fe
  } else if (inherits(fe, "formula") && length(fe) == 2) {
    vars <- all.vars(fe)
  } else {
    stop("fe must be a one-sided formula naming the strata, e.g. fe = ~ stratum", call. = FALSE)
  }
  if (!length(vars)) stop("fe names no variable: use e.g. fe = ~ stratum", call. = FALSE)
  missing_vars <- setdiff(vars, names(data))
  if (length(missing_vars)) {
    stop(sprintf("fixed-effect (strata) column '%s' not found in data", missing_vars[1]),
         call. = FALSE)
  }
  vars
}

treatment_values <- function(d, name) {
  if (is.logical(d)) return(as.numeric(d))
  if (!is.numeric(d) || is.factor(d)) {
    stop(sprintf("treatment column '%s' must be numeric (0/1 for a binary treatment) or logical, ",
                 name), sprintf("not %s", class(d)[1]), call. = FALSE)
  }
  as.numeric(d)
}

check_treatment <- function(d, name, binary, what) {
  seen <- sort(unique(d))
  if (length(seen) < 2) {
    stop(sprintf("treatment column '%s' is constant (every row is %s): there is no contrast to ",
                 name, format(seen)), "estimate", call. = FALSE)
  }
  if (binary && !all(seen %in% c(0, 1))) {
    shown <- paste(format(utils::head(seen, 10)), collapse = ", ")
    stop(sprintf("treatment column '%s' must be binary (0/1 or TRUE/FALSE) for %s; values seen: %s%s",
                 name, what, shown, if (length(seen) > 10) ", ..." else ""), call. = FALSE)
  }
  invisible(d)
}
