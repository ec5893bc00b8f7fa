# Moving numbers across the R-Python boundary.  reticulate 1.28 predates
# NumPy 2 and cannot convert NumPy arrays in either direction, so numbers
# travel as little-endian bytes (exact, bit for bit) and labels as lists.

# A named list of R vectors -> a Python dict of columns.
py_columns <- function(columns) {
  reticulate::py_dict(names(columns), unname(lapply(columns, py_column)), convert = FALSE)
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
