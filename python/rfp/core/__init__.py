"""The method's core (docs/DESIGN.md, section 1): the bi-level objective R_k
(eq. 18-20: alpha times the pooled loss plus 1 - alpha times the loss after k
inner steps on each cluster), the models f(theta, x), the layout of clusters
into padded size buckets, minibatches of clusters, devices, the direct
solution of the linear model's quadratic R_k, the text encoder, and JAX's
compilation cache.  Nothing here reads a table or knows about tuning."""
