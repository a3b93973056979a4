"""What a dataset trains, shown: the summary, the terminal preview and the HTML report."""
