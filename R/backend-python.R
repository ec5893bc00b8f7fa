# Finding and starting the Python backend.  Nothing here runs when the
# package loads: Python starts on the first call that needs it.

.backend <- new.env(parent = emptyenv())

#' Which Python the rfp backend uses
#'
#' Looks, in order, at the environment variable `RFP_PYTHON`; at the
#' checkout's own `.venv` when R runs inside a checkout of rfp (walking up
#' from the working directory to a `pyproject.toml` with `name = "rfp"` next
#' to a `.venv`); and at a reticulate virtualenv named `r-rfp` (made by
#' [install_rfp()]). Starts nothing.
#'
#' @return A list with `python` (a path) and `source` (where it was found),
#'   or `NULL` when none is found.
#' @examples
#' found <- rfp_python()
#' if (!is.null(found)) found$source
#' @export
rfp_python <- function() {
  env <- Sys.getenv("RFP_PYTHON")
  if (nzchar(env)) {
    if (!file.exists(env)) {
      stop(sprintf("RFP_PYTHON is set to '%s', which does not exist", env), call. = FALSE)
    }
    # not normalizePath(): a virtualenv's python is a symlink that must stay one
    return(list(python = absolute_path(env), source = "RFP_PYTHON"))
  }
  root <- rfp_checkout()
  if (!is.null(root)) {
    python <- venv_python(file.path(root, ".venv"))
    if (!is.null(python)) return(list(python = python, source = paste("checkout", root)))
  }
  venv <- file.path(reticulate::virtualenv_root(), "r-rfp")
  python <- venv_python(venv)
  if (!is.null(python)) return(list(python = python, source = "virtualenv r-rfp"))
  NULL
}

#' Is the rfp backend usable?
#'
#' Starts Python (if it is not running) and imports the backend.
#'
#' @return `TRUE` or `FALSE`; never an error.
#' @examples
#' \donttest{
#' rfp_available()
#' }
#' @export
rfp_available <- function() {
  !inherits(tryCatch(backend(), error = identity), "error")
}

#' Install the Python backend into a virtualenv
#'
#' Creates the reticulate virtualenv `envname` (default `r-rfp`, where rfp
#' looks when `RFP_PYTHON` is unset and R does not run inside a checkout)
#' and pip-installs the backend and its dependencies (JAX, optax, NumPy,
#' pyarrow) into it.
#'
#' @param path The rfp source directory (with `pyproject.toml`), or any
#'   requirement pip understands. Defaults to the checkout that contains the
#'   working directory.
#' @param envname Name of the virtualenv.
#' @param python The Python used to create the virtualenv (default: the
#'   one reticulate picks).
#' @return The path of the virtualenv's Python, invisibly.
#' @examples
#' \dontrun{
#' # downloads JAX and the backend's other dependencies from PyPI
#' install_rfp()
#' }
#' @export
install_rfp <- function(path = NULL, envname = "r-rfp", python = NULL) {
  if (is.null(path)) {
    path <- rfp_checkout()
    if (is.null(path)) {
      stop("install_rfp() does not know where the rfp source is: pass path = the directory ",
           "that holds rfp's pyproject.toml", call. = FALSE)
    }
  }
  if (file.exists(path)) path <- normalizePath(path)
  if (is.null(python)) {
    reticulate::virtualenv_create(envname)
  } else {
    reticulate::virtualenv_create(envname, python = python)
  }
  reticulate::virtualenv_install(envname, packages = path, ignore_installed = TRUE)
  out <- venv_python(file.path(reticulate::virtualenv_root(), envname))
  if (envname != "r-rfp") {
    message(sprintf("set RFP_PYTHON=%s so that rfp uses this virtualenv", out))
  }
  invisible(out)
}

# The backend: Python started and `rfp.facade` imported (convert = FALSE, so
# NumPy arrays stay in Python until converted on purpose). The facade
# (python/rfp/facade.py) is the only Python module R imports: every call into
# Python goes through `backend()$facade`.
backend <- function() {
  if (!is.null(.backend$facade)) return(.backend)
  found <- rfp_python()
  if (is.null(found)) stop(no_backend_message(), call. = FALSE)
  if (reticulate::py_available(initialize = FALSE)) {
    running <- reticulate::py_config()$python
    if (!reticulate::py_module_available("rfp.facade")) {
      stop(sprintf(paste0("Python is already running in this R session (%s) and cannot import ",
                          "rfp; rfp's backend is %s (%s). Restart R and call rfp before ",
                          "anything else starts Python"), running, found$python, found$source),
           call. = FALSE)
    }
  } else {
    # RETICULATE_PYTHON outranks everything in reticulate's discovery (a
    # pyproject.toml in the working directory would otherwise make it look
    # for Poetry); set it only while Python starts.
    old <- Sys.getenv("RETICULATE_PYTHON", unset = NA)
    Sys.setenv(RETICULATE_PYTHON = found$python)
    on.exit(if (is.na(old)) Sys.unsetenv("RETICULATE_PYTHON")
            else Sys.setenv(RETICULATE_PYTHON = old), add = TRUE)
    reticulate::use_python(found$python, required = TRUE)
  }
  module <- tryCatch(reticulate::import("rfp.facade", convert = FALSE), error = function(e) {
    stop(sprintf(paste0("the Python at %s (from %s) cannot import the rfp backend: %s\n",
                        "Install it there (pip install <rfp source>), or run install_rfp(), ",
                        "or set RFP_PYTHON to a Python that has it"),
                 found$python, found$source, clean_message(conditionMessage(e))), call. = FALSE)
  })
  .backend$python <- found$python
  .backend$facade <- module
  .backend
}

no_backend_message <- function() {
  paste0("rfp needs its Python backend, and none was found. Either set the ",
         "environment variable RFP_PYTHON to a Python that has rfp installed ",
         "(e.g. Sys.setenv(RFP_PYTHON = \"/path/to/rfp/.venv/bin/python\")), or run ",
         "install_rfp() once to make the virtualenv 'r-rfp'")
}

# Call into Python; a Python error becomes an R error with its message only.
py_call <- function(expr) {
  tryCatch(expr, error = function(e) stop(clean_message(conditionMessage(e)), call. = FALSE))
}

clean_message <- function(msg) {
  msg <- sub("\n*\\s*Detailed traceback:.*$", "", msg)
  msg <- sub("\n*\\s*Run `?reticulate::py_last_error\\(\\)`?.*$", "", msg)
  msg <- sub("^(Error in [^\n]*:\\s*)", "", msg)
  msg <- sub("^(ValueError|TypeError|RuntimeError|FloatingPointError|NotImplementedError): ", "",
             msg)
  trimws(msg)
}

# Walk up from the working directory to rfp's source root: a pyproject.toml
# whose project name is rfp.
rfp_checkout <- function(start = getwd()) {
  dir <- normalizePath(start, mustWork = FALSE)
  repeat {
    toml <- file.path(dir, "pyproject.toml")
    if (file.exists(toml) &&
        any(grepl("^\\s*name\\s*=\\s*[\"']rfp[\"']", readLines(toml, warn = FALSE)))) {
      return(dir)
    }
    parent <- dirname(dir)
    if (identical(parent, dir)) return(NULL)
    dir <- parent
  }
}

venv_python <- function(venv) {
  candidates <- file.path(venv, c("bin/python", "Scripts/python.exe"))
  hit <- candidates[file.exists(candidates)]
  if (length(hit)) hit[1] else NULL
}

absolute_path <- function(path) {
  path <- path.expand(path)
  if (grepl("^(/|[A-Za-z]:)", path)) path else file.path(getwd(), path)
}
