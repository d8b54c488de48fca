"""capacity.audit: a capacity document's claims checked against measurements (``capacity audit``).

``claims`` (the claims file: model, loading, checks), ``units`` (what a unit measures), ``arithmetic`` (a
claim's formula), ``evidence`` (what a sweep and its fit say about each kind of claim), ``judge`` (one
verdict per claim: holds, refuted, projected, untestable, inconsistent) and ``render`` (rows, audit.json,
Markdown, the rewritten summary table). docs/audit.md describes the format and the rules.
"""
