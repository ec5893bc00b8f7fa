"""Choosing the model (docs/DESIGN.md, "Choosing the model"): candidates from
the training mean through the linear model to the network's configurations
(``grid``, ``simple_candidates``, ``bag_of_words``), scored on the same
held-out clusters by K-fold cross-validation (``crossval``), compared by
paired differences across clusters (``selection``), tabulated and chosen
(``cv_result``), and the chosen candidate refitted (``tune``)."""
