"""Static checks of the Knative and OpenFaaS deployment artefacts."""
