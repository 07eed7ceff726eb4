// Package validate holds CI checks for the deployment files under examples/ and the Dockerfile.
// It is a module of its own so that the validators' dependencies (buildkit's Dockerfile
// parser, the Kubernetes API types) never enter the encfs module's go.mod.
package validate
