"""dmlstudy: a reproducible study of deep metric learning losses."""
