"""spark-submit entrypoint: build one day's feature partition of a pipeline.

    spark-submit jobs/build_features.py --pipeline flights --ds 2013-01-05

A thin shell around :func:`runway_mlops.features.job.main`; the transforms live in the
package so they are unit-tested without spark-submit and shared with training/serving.
"""

import sys

from runway_mlops.features.job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
