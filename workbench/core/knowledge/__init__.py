"""Knowledge sets: facts, their phrasings and probes, import/export, rendering to examples.

Submodules: `types` (plain data), `sets` (create/edit sets and facts in the store), `io`
(import and export files), `paraphrase` (question phrasings and statements), `documents`
(documents → proposed QA pairs; `chunking` cuts them to size), `probes` (phrasings, held-out
split), `locality` (general-knowledge and neighbour probes), `screen` (what the base model
already knows), `render` (chat-template examples with answer-only labels).
"""
