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
    return(b$facade$from_buffer(writeBin(as.vector(x), raw(), size = 4, endian = "little"),
                                "<i4"))
  }
  if (is.double(x)) {
    return(b$facade$from_buffer(writeBin(as.vector(x), raw(), size = 8, endian = "little"),
                                "<f8"))
  }
  if (is.character(x)) return(reticulate::r_to_py(as.list(x)))
  stop(sprintf("cannot send a column of type %s to the backend", typeof(x)), call. = FALSE)
}

# A NumPy array (or anything np.asarray takes) -> an R double vector.
r_numeric <- function(a) {
  b <- backend()
  raw <- reticulate::py_to_r(b$facade$float64_bytes(a))
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
# through Python lists, with nulls as NA (each column's kind from
# facade.arrow_kinds).
r_table <- function(table) {
  facade <- backend()$facade
  schema <- r_plain(facade$arrow_kinds(table))
  names <- unlist(schema$names)
  kinds <- unlist(schema$kinds)
  columns <- lapply(seq_along(names), function(j) {
    kind <- kinds[[j]]
    column <- facade$arrow_column(table, names[[j]], kind)
    if (kind == "floating") return(r_numeric(column))
    if (kind == "integer") {
      values <- r_numeric(column)
      if (all(abs(values) <= .Machine$integer.max)) values <- as.integer(values)
      return(values)
    }
    values <- r_plain(column)
    missing <- vapply(values, is.null, logical(1))
    values[missing] <- NA
    values <- unlist(values)
    if (kind == "boolean") as.logical(values) else values
  })
  as.data.frame(stats::setNames(columns, names), stringsAsFactors = FALSE, optional = TRUE)
}

# A Python dict of scalars (numbers, flags, text) -> a named R list; a list
# or tuple of numbers (e.g. one value per fold) becomes a numeric vector
# (facade.plain_scalars).
r_scalars <- function(d) {
  out <- r_plain(backend()$facade$plain_scalars(d))
  lapply(out, function(v) if (is.list(v)) as.numeric(unlist(v)) else v)
}
