"""The end-to-end demo: synth -> curate -> train -> eval -> report, each step a real `sailvl` command."""
