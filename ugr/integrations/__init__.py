"""The method in other toolkits' training loops: asteroid's System (a loss) and Lightning (a module)."""
