"""Pages and tables a reader sees: the index page, experiment pages, README's table, the campaign
and paper-grade reports, ``make exps``, DVC's offline plots template."""
