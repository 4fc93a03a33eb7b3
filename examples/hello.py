# A first vessel program: log a greeting with the arguments and some facts.
log("hello from a vessel; args =", callargs)
handle = openfile("greeting.txt", True)
handle.writeat("written inside the vessel\n", 0)
handle.close()
log("files:", listfiles())
log("runtime is", round(getruntime(), 3), "seconds")
