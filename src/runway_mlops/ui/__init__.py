"""Pages Runway adds to the Airflow UI (served by the plugin in ``plugins/``)."""
