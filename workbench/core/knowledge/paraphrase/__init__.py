"""Question phrasings and declarative statements for a fact.

Facts go in far better when training sees many differently worded questions per fact, and a
held-out share of phrasings is what measures generalisation rather than recall of one string.
This package makes those phrasings three ways:

* `template_paraphrases` — deterministic rewrites: a light parse of the question (wh-phrase,
  auxiliary, subject, rest) drives form-specific rewrites ("Where was X born?" → "What is X's
  birthplace?"), indirect questions with the right word order ("Do you know where X was born?"),
  echo questions ("X was born where?") and generic wrappers ("Quick question: …").
* `form_variants` — the question asked in other forms (see `forms`): a request ("Tell me where
  X was born."), the wh-phrase left in place ("X was born where?") and a sentence to complete
  ("X was born in"), so held-out probes can differ from the trained question in form.
* `statements` — the fact said as a sentence ("X was born in London."), for statement training.
* `model_paraphrases` — asks a model to rephrase and cleans up whatever comes back.

The parse is a heuristic, not a grammar: where it is unsure it produces nothing rather than a
broken sentence, and the generic wrappers still give enough phrasings.

One module per job, lowest first: `words` (word lists, small text helpers), `parse` (question
kinds and the light parse), `declarative` (statements), `rewrite` (template paraphrases and
other forms), `model` (model paraphrases). Names with a leading underscore are private to this
package; import the public ones from here.
"""

from workbench.core.knowledge.forms import form_of
from workbench.core.knowledge.paraphrase.declarative import statements
from workbench.core.knowledge.paraphrase.model import model_paraphrases
from workbench.core.knowledge.paraphrase.parse import FORMS, question_form
from workbench.core.knowledge.paraphrase.rewrite import form_variants, template_paraphrases
from workbench.core.knowledge.paraphrase.words import dedupe

__all__ = ["FORMS", "dedupe", "form_of", "form_variants", "model_paraphrases", "question_form",
           "statements", "template_paraphrases"]
