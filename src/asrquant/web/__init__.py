"""``asrquant web ARTIFACT``: a page that transcribes in the browser with a ``--format
transformers.js`` export, served on localhost with its JavaScript (transformers.js and
onnxruntime-web from npm, installed in the repository's ``web/``), nothing from a CDN."""
