"""Moderation: local checks of a reply (word and pattern lists, PII, repetition, quality, language).

`checks` is the interface and the registry (`CheckInput`, `CheckSettings`, `CheckResult`, `LOCAL_CHECKS`,
`run_local`); `wordlists`, `pii`, `repetition`, `quality` and `language` hold the pure functions behind
them (no I/O beyond the files shipped in `data/`, nothing downloaded at run time). `evaluate` prints each
check's precision and recall on a labelled set (`gateway moderation eval [path]`). What to do when a
check fires (block, mask, flag) and what to do when one fails is the caller's decision.
"""
