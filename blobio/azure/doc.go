// Package azure reads images from Azure Blob Storage and writes them there: Source (azure.go)
// reads a block or page blob pinned to its ETag; Auth and the credential chain are in
// azauth.go; Upload (upload.go) and CheckUpload (uploadcheck.go) write a blob resumably;
// PageBlob (pageblob.go) is a read-write volume's store, a page blob held by one writer through
// a renewed lease (lease.go); MakeSAS (sas.go) signs a SAS with an account key; diagnose.go
// turns a refusal into a hint that names its cause. Failures are *blobio.Error values of
// blobio's kinds, with secrets redacted. Tests run against a real Azurite (blobio/azuritetest).
//
// The Create Container call of an upload and the Lease Blob calls of a volume are sent by hand
// (upload.go, createContainer; lease.go): the SDK's container and lease clients would link
// Apache Arrow, flatbuffers, zstd and lz4 into the sidecar binary (cmd/encfs's
// TestBinaryDependencies keeps them out).
package azure
