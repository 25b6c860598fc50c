"""The MongoDB sink: projections kept current as read models in the database the app's API reads
(`documents`: their shapes; `pending`: a partition's replica and its writes; `writer`: MongoDB;
`sink`: the changelogs and versions; `cli`: `streams sink`)."""
