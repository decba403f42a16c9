"""LLM providers behind one small interface (`base.Provider`), looked up by name in `registry`."""
