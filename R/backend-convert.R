# Moving numbers across the R-Python boundary.  reticulate 1.28 predates
# NumPy 2 and cannot convert NumPy arrays in either direction, so numbers
# travel as little-endian bytes (exact, bit for bit) and labels as lists.

# A named list of R vectors -> a Python dict of columns.
py_columns <- function(columns) {
  # Convert first: py_dict() would start reticulate's default Python before
  # its (lazy) values argument gets to start rfp's backend.
  values <- unname(lapply(columns, py_column))
  reticulate::py_dict(names(columns), values, convert = FALSE)
}

# One R vector -> a NumPy array (numbers) or a list of str (labels).
py_column <- function(x) {
  b <- backend()
  if (is.factor(x) || (is.object(x) && !is.numeric(x)) || inherits(x, c("Date", "POSIXt"))) {
    x <- as.character(x)
  }
  if (is.logical(x)) x <- as.integer(x)
  if (is.integer(x)) {
    return(b$numpy$frombuffer(writeBin(as.vector(x), raw(), size = 4, endian = "little"),
                              dtype = "<i4"))
  }
  if (is.double(x)) {
    return(b$numpy$frombuffer(writeBin(as.vector(x), raw(), size = 8, endian = "little"),
                              dtype = "<f8"))
  }
  if (is.character(x)) return(reticulate::r_to_py(as.list(x)))
  stop(sprintf("cannot send a column of type %s to the backend", typeof(x)), call. = FALSE)
}

# A NumPy array (or anything np.asarray takes) -> an R double vector.
r_numeric <- function(a) {
  b <- backend()
  bytes <- b$numpy$ascontiguousarray(a, dtype = "<f8")$tobytes()
  raw <- reticulate::py_to_r(b$builtins$bytearray(bytes))
  readBin(raw, "double", n = length(raw) %/% 8L, size = 8, endian = "little")
}

# A NumPy array of labels -> an R vector (character, integer or double).
r_labels <- function(a) {
  out <- reticulate::py_to_r(a$tolist())
  if (length(out) == 0) return(character(0))
  unlist(out)
}

# A Python scalar, list or dict of plain values -> R.
r_plain <- function(x) reticulate::py_to_r(x)

# An Arrow table -> a data frame: floating columns as bytes (exact), integer
# columns as R integers where they fit, booleans as logical, the rest (labels)
# through Python lists, with nulls as NA.
r_table <- function(table) {
  types <- reticulate::import("pyarrow.types", convert = FALSE)
  names <- unlist(r_plain(table$column_names))
  columns <- lapply(names, function(name) {
    column <- table$column(name)
    type <- column$type
    if (r_plain(types$is_floating(type))) return(r_numeric(column$to_numpy()))
    if (r_plain(types$is_integer(type)) && as.integer(r_plain(column$null_count)) == 0L) {
      values <- r_numeric(column$to_numpy())
      if (all(abs(values) <= .Machine$integer.max)) values <- as.integer(values)
      return(values)
    }
    values <- r_plain(column$to_pylist())
    missing <- vapply(values, is.null, logical(1))
    values[missing] <- NA
    values <- unlist(values)
    if (r_plain(types$is_boolean(type))) as.logical(values) else values
  })
  as.data.frame(stats::setNames(columns, names), stringsAsFactors = FALSE, optional = TRUE)
}

# A Python dict of scalars (numbers, flags, text) -> a named R list; a list
# or tuple of numbers (e.g. one value per fold) becomes a numeric vector.
r_scalars <- function(d) {
  to_plain <- reticulate::py_eval(paste0(
    "lambda d: {str(k): ([float(u) for u in v] if isinstance(v, (list, tuple)) and ",
    "all(hasattr(u, '__float__') for u in v) ",
    "else bool(v) if isinstance(v, bool) or type(v).__name__ == 'bool_' ",
    "else float(v) if hasattr(v, '__float__') and not isinstance(v, str) else str(v)) ",
    "for k, v in d.items()}"), convert = FALSE)
  out <- r_plain(reticulate::py_call(to_plain, d))
  lapply(out, function(v) if (is.list(v)) as.numeric(unlist(v)) else v)
}
