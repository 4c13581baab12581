"""The embedded demo: a synthetic world of fictional people, the small model pretrained on it
and the knowledge set injected into it, so the app shows real injection offline on a CPU."""
