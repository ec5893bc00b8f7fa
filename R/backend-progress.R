# Progress bars: one rule for R and Python (python/rfp/progress.py). A bar
# is shown when the session is interactive or stderr is a terminal, and never
# while knitr renders a document; `progress = TRUE / FALSE` forces it. The
# bar is written to stderr (never to the output knitr or sink() capture),
# with the elapsed time and an estimate of the time remaining.

# Is a bar wanted? `progress`: NULL (the rule above), TRUE or FALSE.
wants_progress <- function(progress, interactive = base::interactive(),
                           terminal = isatty(stderr())) {
  if (!is.null(progress)) return(check_flag(progress, "progress"))
  (isTRUE(interactive) || isTRUE(terminal)) && !isTRUE(getOption("knitr.in.progress"))
}

# `progress`, or the old name `verbose` given in `...` (with a warning).
progress_setting <- function(progress, dots) {
  if (!"verbose" %in% names(dots)) return(progress)
  warning("verbose = is now called progress =; using verbose = ", format(dots$verbose),
          call. = FALSE)
  dots$verbose
}

# A text bar on stderr over `total` units (fits or steps): update(done)
# redraws it (at most ten times a second), close() clears the line.
# `at_most`: the total is an upper bound (early stopping), so the remaining
# time is too.
stderr_bar <- function(total, unit, label = "rfp", at_most = FALSE) {
  state <- new.env(parent = emptyenv())
  state$start <- Sys.time()
  state$drawn <- -Inf
  state$width <- 0L
  draw <- function(done, force = FALSE) {
    now <- as.numeric(Sys.time())
    if (!force && now - state$drawn < 0.1) return(invisible(NULL))
    state$drawn <- now
    done <- min(max(done, 0), total)
    elapsed <- as.numeric(difftime(Sys.time(), state$start, units = "secs"))
    remaining <- if (done > 0) elapsed / done * (total - done) else NA_real_
    share <- if (total > 0) done / total else 1
    filled <- round(25 * share)
    line <- sprintf("%s [%s%s] %3.0f%% %s/%s %s | elapsed %s | remaining %s%s", label,
                    strrep("=", filled), strrep(" ", 25 - filled), 100 * share,
                    format(floor(done)), format(total), unit, clock(elapsed),
                    if (at_most) "<= " else "~", if (is.na(remaining)) "?" else clock(remaining))
    state$width <- max(state$width, nchar(line))
    cat("\r", formatC(line, width = -state$width), sep = "", file = stderr())
    utils::flush.console()
    invisible(NULL)
  }
  draw(0, force = TRUE)
  list(update = function(done) draw(done),
       close = function() {
         cat("\r", strrep(" ", state$width), "\r", sep = "", file = stderr())
         invisible(NULL)
       })
}

# Seconds as m:ss (or h:mm:ss).
clock <- function(seconds) {
  seconds <- round(seconds)
  h <- seconds %/% 3600
  m <- (seconds %% 3600) %/% 60
  s <- seconds %% 60
  if (h > 0) sprintf("%d:%02d:%02d", h, m, s) else sprintf("%d:%02d", m, s)
}

# One bar over the steps of one fit, fed by the backend's progress callback
# (step, total, train_loss, validation_loss); or nothing.
progress_bar <- function(max_steps, progress) {
  if (!wants_progress(progress)) return(list(callback = FALSE, close = function() invisible()))
  bar <- stderr_bar(max_steps, "steps", at_most = TRUE)
  update <- function(step, total, train_loss, validation_loss) {
    bar$update(as.numeric(step))
    invisible(NULL)
  }
  list(callback = reticulate::r_to_py(update, convert = TRUE), close = bar$close)
}

# The bar of rfp(tune = TRUE): the cross-validation reports (done, total,
# best_cv, mean_cv) over every shape group's steps (python/rfp/crossval.py),
# then the refit on all clusters reports (step, total, train_loss,
# validation_loss) as a fit does. The bar restarts, labelled "rfp refit",
# when the count goes back or the total changes; or nothing.
tune_progress_bar <- function(progress) {
  if (!wants_progress(progress)) return(list(callback = FALSE, close = function() invisible()))
  state <- new.env(parent = emptyenv())
  state$bar <- NULL
  state$total <- NA_real_
  state$last <- Inf
  update <- function(done, total, ...) {
    done <- as.numeric(done)
    total <- as.numeric(total)
    if (is.null(state$bar) || done <= state$last || !identical(total, state$total)) {
      label <- if (is.null(state$bar)) "rfp tune" else "rfp refit"
      if (!is.null(state$bar)) state$bar$close()
      state$bar <- stderr_bar(total, "steps", label = label, at_most = TRUE)
      state$total <- total
    }
    state$last <- done
    state$bar$update(done)
    invisible(NULL)
  }
  list(callback = reticulate::r_to_py(update, convert = TRUE),
       close = function() {
         if (!is.null(state$bar)) state$bar$close()
         invisible(NULL)
       })
}

# One bar over `n_fits` backend fits of up to `max_steps` steps each. The
# backend reports (step, total, ...) every few steps of the fit in progress;
# a step that does not exceed the last one starts a new fit.
fits_progress <- function(n_fits, progress) {
  if (!wants_progress(progress) || n_fits < 1) {
    return(list(settings = list(), close = function() NULL))
  }
  bar <- stderr_bar(n_fits, "fits")
  state <- new.env(parent = emptyenv())
  state$fit <- 0
  state$last <- Inf
  update <- function(step, total, train_loss, validation_loss) {
    step <- as.numeric(step)
    if (step <= state$last) state$fit <- state$fit + 1
    state$last <- step
    bar$update(min(state$fit - 1 + step / as.numeric(total), n_fits))
    invisible(NULL)
  }
  list(settings = list(progress = reticulate::r_to_py(update, convert = TRUE)),
       close = bar$close)
}
