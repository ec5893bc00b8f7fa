"""Balancing weights (docs/DESIGN.md, section 4): entropy balancing
(``entropy``), hierarchical balancing (``hierarchical``), cluster balancing
(``cluster``), their quadratic programs (``quadratic_program``), array checks
(``inputs``), the table front ends (``tables``) and ``rfp.balance``
(``balance``)."""
