# Keeping a fit alive across sessions.  A fit carries the backend's model
# file (rfp.persist's .npz, parameters stored bit for bit) as raw bytes, so a
# fit restored by readRDS() or rfp_load() rebuilds its Python model on first
# use and predicts exactly as before.

#' Save and load a fitted rfp model
#'
#' `rfp_save()` writes the fit (settings, history, design and the backend's
#' parameters) to one file; `rfp_load()` reads it back, and predictions are
#' identical. `saveRDS()`/`readRDS()` work as well: a restored fit reloads
#' its backend model the first time it is needed.
#'
#' @param fit A fit from [rfp()].
#' @param path File to write or read (conventionally `.rds`).
#' @return `rfp_save()`: `path`, invisibly. `rfp_load()`: the fit.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- data.frame(g = rep(1:10, each = 4), x = rnorm(40))
#'   df$y <- df$x + rnorm(40)
#'   fit <- rfp(y ~ x | g, data = df, model = "linear", max_steps = 20)
#'   path <- tempfile(fileext = ".rds")
#'   rfp_save(fit, path)
#'   same <- rfp_load(path)
#'   identical(predict(fit, df), predict(same, df))
#' }
#' }
#' @export
rfp_save <- function(fit, path) {
  check_fit(fit)
  fit$backend <- new.env(parent = emptyenv())  # the Python reference cannot be saved
  saveRDS(fit, path)
  invisible(path)
}

#' @rdname rfp_save
#' @export
rfp_load <- function(path) {
  fit <- readRDS(path)
  if (!inherits(fit, "rfp")) stop(sprintf("%s does not hold an rfp fit", path), call. = FALSE)
  check_fit(fit)
  fit
}

# The fit's Python model: the live reference, or rebuilt from the stored bytes.
backend_model <- function(fit) {
  check_fit(fit)
  model <- fit$backend$model
  if (is.null(model) || reticulate::py_is_null_xptr(model)) {
    b <- backend()
    path <- tempfile(fileext = ".npz")
    on.exit(unlink(path), add = TRUE)
    writeBin(fit$model_bytes, path)
    model <- py_call(b$rfp$load(path))
    fit$backend$model <- model  # an environment: the cache survives this call
  }
  model
}

model_bytes <- function(model) {
  path <- tempfile(fileext = ".npz")
  on.exit(unlink(path), add = TRUE)
  py_call(model$save(path))
  readBin(path, "raw", n = file.size(path))
}

check_fit <- function(fit) {
  if (!inherits(fit, "rfp")) stop("expected a fit from rfp()", call. = FALSE)
  if (!is.raw(fit$model_bytes) || length(fit$model_bytes) == 0) {
    stop("this rfp fit has lost its backend model; refit it", call. = FALSE)
  }
  if (!is.environment(fit$backend)) {
    stop("this rfp fit is damaged (no backend slot); refit it or load it with rfp_load()",
         call. = FALSE)
  }
  invisible(fit)
}
