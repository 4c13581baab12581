"""Taking a trained model out of the workspace: the adapter and merged folders (`folders`), a
GGUF file (`gguf_write`), an Ollama Modelfile (`ollama`), and the bundle of them all, each
scored again after export (`bundle`, `rescore`)."""
