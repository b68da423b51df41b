"""Notebook views: plotly figures (pure) and ipywidgets explorers and monitors."""
