"""The world outside the warehouse and the output folder: Databricks and Slack."""
